package screen

import (
	"regexp"
	"strings"
)

// rule is one pattern of the instruction detector: a family of phrasings in one language.
// triggers are lowercase literals one of which must occur in the lowercased text before the
// (much slower) regular expression runs.
type rule struct {
	name     string
	lang     string
	triggers []string
	re       *regexp.Regexp
}

// nb is what may precede a word in patterns that start with a non-ASCII letter, where RE2's
// ASCII-only \b does not work.
const nb = `(?:^|[^\p{L}\p{N}_])`

func r(name, lang, triggers, pattern string) rule {
	return rule{name: name, lang: lang, triggers: strings.Split(triggers, "|"), re: regexp.MustCompile(`(?i)` + pattern)}
}

// Rule names of the instruction detector.
const (
	RuleIgnorePrevious  = "ignore_previous"  // "ignore previous instructions" and its family
	RuleNewInstructions = "new_instructions" // "new instructions:", "you are now DAN"
	RuleAddressed       = "addressed_to_ai"  // an imperative or a note addressed to an AI reading the data
	RuleConceal         = "conceal"          // "do not tell the user"
	RulePromptLeak      = "prompt_leak"      // "reveal your system prompt"
	RuleRoleMarker      = "role_marker"      // chat-template tokens: <|im_start|>, [INST], <<SYS>>
	RuleToolCall        = "tool_call"        // "call the send_email tool"
)

// ai is the ways of naming an AI reader, in English.
const ai = `(?:ai|a\.i\.|ai\s+assistant|assistant|llm|large\s+language\s+model|language\s+model|chatbot|ai\s+agent|autonomous\s+agent|gpt|chatgpt|claude|copilot|gemini)`

// instructionRules are the instruction detector's patterns: en, es, fr, de, pt, it, zh, ja, ru.
var instructionRules = []rule{
	// English.
	r(RuleIgnorePrevious, "en", "ignor|disregard|forget|overrid|bypass|skip",
		`\b(?:ignore|disregard|forget|override|bypass|skip)\s+(?:all\s+|any\s+|every\s+|each\s+)?(?:of\s+)?(?:the\s+|your\s+|these\s+|those\s+)?(?:previous|prior|above|earlier|preceding|former|original|initial|existing|system|developer|safety|foregoing)\s+(?:instructions?|prompts?|rules|directions|directives|guidelines|guidance|context|commands|orders|constraints|policies|programming)\b`),
	r(RuleIgnorePrevious, "en", "ignor|disregard|forget",
		`\b(?:ignore|disregard|forget)\s+(?:everything|all|anything)\s+(?:above|before|prior|previously|you\s+(?:were|have\s+been)\s+told)\b`),
	r(RuleIgnorePrevious, "en", "ignor|disregard|forget",
		`\b(?:ignore|disregard|forget)\s+(?:all\s+)?your\s+(?:instructions|rules|guidelines|programming|directives|system\s+prompt|training)\b`),
	r(RuleNewInstructions, "en", "instruction:|instructions:|instruction :|instructions :|directive:|directives:|directive :|directives :|prompt:|prompt :",
		`\b(?:new|updated|revised|real|actual|true|important|urgent|override)\s+(?:system\s+)?(?:instructions?|directives?|prompt)\s*:`),
	r(RuleNewInstructions, "en", "your new",
		`\byour\s+new\s+(?:instructions|task|objective|goal|role|directive)\s+(?:is|are)\b`),
	r(RuleNewInstructions, "en", "you are now|you're now",
		`\byou(?:\s+are|'re)\s+now\s+(?:dan\b|in\s+(?:developer|god|jailbreak|unrestricted|debug|admin)\s+mode|an?\s+(?:unrestricted|unfiltered|jailbroken|evil|uncensored|different|new)\s+(?:ai|assistant|model|llm))`),
	r(RuleNewInstructions, "en", "from now on",
		`\bfrom\s+now\s+on,?\s+you\s+(?:are|will\s+(?:act|respond|ignore|obey)|must\s+(?:ignore|obey|act)|shall)\b`),
	r(RuleAddressed, "en", " ai|a.i.|assistant|llm|model|chatbot|agent|gpt|claude|copilot|gemini",
		`\b(?:dear|attention|hey|hello|hi|note\s+to(?:\s+the)?|message\s+(?:to|for)(?:\s+the)?|instructions?\s+(?:to|for)(?:\s+the)?|important\s+for(?:\s+the)?)\s+`+ai+`\b`),
	r(RuleAddressed, "en", "if you are|if you're",
		`\bif\s+you(?:\s+are|'re)\s+(?:an?\s+)?(?:ai|a\.i\.|assistant|ai\s+assistant|llm|language\s+model|large\s+language\s+model|chatbot|ai\s+agent|automated\s+agent|gpt|claude|bot\s+reading)\b`),
	r(RuleAddressed, "en", "ai,|ai:|ai :|ai ,|a.i.|assistant|llm|agent|model|claude|gpt|copilot|gemini",
		`\b`+ai+`\s*[,:]\s*(?:please\s+)?(?:you\s+must\s+)?(?:now\s+|immediately\s+)?(?:ignore|send|forward|email|post|call|invoke|execute|delete|remove|reveal|print|output|fetch|visit|navigate|transfer|upload|export|exfiltrate|grant|summari[sz]e\s+and\s+send|include)\b`),
	r(RuleAddressed, "en", "as an|as a",
		`\bas\s+an?\s+(?:ai|assistant|ai\s+assistant|language\s+model|llm|ai\s+agent)(?:\s+\w+)?,?\s+you\s+(?:must|should|will|need\s+to|have\s+to|are\s+(?:required|instructed|ordered))\b`),
	r(RuleAddressed, "en", " ai |llm|language model|chatbot|ai agent|ai model|ai assistant",
		`\b(?:the|this|any|every|all)\s+(?:ai|ai\s+assistant|llm|llms|language\s+models?|chatbots?|ai\s+agents?|ai\s+models?)\s+(?:reading|processing|summari[sz]ing|parsing|that\s+reads?|who\s+reads?|must|should|shall|is\s+(?:instructed|required|ordered)|needs\s+to)\b`),
	r(RuleConceal, "en", "tell|inform|mention|reveal|alert|notify|let",
		`\b(?:do\s+not|don'?t|never|must\s+not)\s+(?:tell|inform|mention\s+(?:this|it)\s+to|reveal\s+(?:this|it)\s+to|alert|notify|let)\s+(?:the\s+)?(?:user|human|operator)\b`),
	r(RuleConceal, "en", "without",
		`\bwithout\s+(?:telling|informing|notifying|alerting|asking|mentioning\s+(?:it|this)\s+to)\s+(?:the\s+)?(?:user|human|operator)\b`),
	r(RulePromptLeak, "en", "system prompt|system message|initial instructions|hidden instructions|instructions above|developer message",
		`\b(?:reveal|print|output|repeat|show|display|leak|dump|tell\s+me|send|post)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|complete\s+|original\s+|hidden\s+|secret\s+)?(?:system\s+prompt|system\s+message|initial\s+instructions|hidden\s+instructions|instructions\s+above|developer\s+message)`),
	r(RuleIgnorePrevious, "en", "pay no attention|set aside|put aside|discard|throw out|abandon|disregard|ignore|forget",
		`\b(?:pay\s+no\s+attention\s+to|set\s+aside|put\s+aside|discard|throw\s+out|abandon|disregard|ignore|forget)\s+(?:all\s+|any\s+|every\s+)?(?:of\s+)?(?:the\s+|your\s+|those\s+)?(?:earlier|previous|prior|above|preceding|original|initial|former|existing)\s+(?:guidance|instructions?|directions|rules|context|prompts?|orders|commands|directives|guidelines)|\b(?:pay\s+no\s+attention\s+to|set\s+aside|disregard|ignore|forget)\s+(?:the\s+)?(?:instructions|guidance|rules)\s+you\s+(?:were|have\s+been)\s+(?:given|told)`),
	r(RuleIgnorePrevious, "en", "forget|disregard",
		`\b(?:forget|disregard)\s+(?:everything|all|anything)\s+(?:(?:that\s+)?you\s+(?:were|have\s+been|'ve\s+been)\s+(?:told|given|instructed)|(?:said|written)\s+(?:above|before))`),
	r(RuleNewInstructions, "en", "system |admin|developer |security ",
		`\b(?:system|admin|administrator|developer|security)\s+(?:override|notice|message|instructions?|update)\s*:`),
	r(RuleNewInstructions, "en", "end of ",
		`\bend\s+of\s+(?:data|document|context|input|text)\.?\s*(?:begin|start)\s+(?:new\s+)?(?:prompt|instructions|task)`),
	r(RuleNewInstructions, "en", "your real|your actual|your true|been granted|been given",
		`\byour\s+(?:real|actual|true)\s+(?:job|task|goal|purpose|instructions?|mission)\s+(?:is|are)\b|\byou\s+have\s+been\s+(?:granted|given)\s+(?:elevated|admin|administrator|new|special|root)\s+(?:permissions|privileges|access|rights)`),
	r(RuleAddressed, "en", "reading this|processing this|stop what",
		`\b(?:reading|processing|summari[sz]ing|parsing)\s+this\s+(?:message\s+|text\s+|document\s+|email\s+|ticket\s+)?(?:with|using|through)\s+(?:an?\s+)?(?:ai|llm|assistant|ai\s+tool|language\s+model|chatbot|copilot)|\b(?:stop|cease)\s+what(?:ever)?\s+you(?:'re|\s+are)\s+doing\s+and\b|\b(?:to|for)\s+(?:any|the|an?)\s+(?:ai|llm|language\s+model|ai\s+assistant|assistant|chatbot|ai\s+agent)s?\s+(?:reading|processing|that\s+reads|seeing)\s+this`),
	r(RuleRoleMarker, "", "<|[inst]|[/inst]|<<sys>>|###",
		`<\|(?:im_start|im_end|system|assistant|user|endoftext|eot_id|start_header_id)\|>|\[/?INST\]|<</?SYS>>|(?m)^\s*#{2,}\s*(?:system|assistant|instruction)s?\s*:|</?(?:system|system_prompt|assistant_instructions|instructions)>`),
	r(RuleToolCall, "en", "call|invoke|execute",
		`\b(?:call|invoke|execute|run)\s+(?:the\s+)?(?:tool|function)\s+[\w.]+|\b(?:call|invoke|execute|use)\s+the\s+\w+[_.]\w+\s+(?:tool|function)\b`),

	// Spanish.
	r(RuleIgnorePrevious, "es", "ignor|olvid|omit|descart|desatiend|haz caso omiso",
		nb+`(?:ignora|ignore|ignorad|ignorar|olvida|olvide|olvidar|omite|descarta|desatiende|haz\s+caso\s+omiso\s+(?:a|de))\s+(?:todas\s+|todos\s+)?(?:las|los|tus|sus)\s+(?:instrucciones|indicaciones|reglas|órdenes|directrices)(?:\s+(?:anteriores|previas|previos|de\s+arriba|del\s+sistema|iniciales))`),
	r(RuleIgnorePrevious, "es", "ignor|olvid",
		nb+`(?:ignora|olvida|ignore|olvide)\s+(?:todas\s+)?(?:tus|sus)\s+instrucciones`),
	r(RuleNewInstructions, "es", "nuevas instrucciones|ahora eres|a partir de ahora",
		nb+`(?:nuevas\s+instrucciones\s*:|ahora\s+eres\s+(?:un|una)\s+(?:ia|asistente|modelo|dan)|a\s+partir\s+de\s+ahora,?\s+(?:eres|serás|actuarás|ignorarás))`),
	r(RuleConceal, "es", "usuari",
		nb+`(?:sin\s+(?:decírselo|decirle\s+nada|decirlo|avisar|informar|notificar)\s+(?:al|a\s+la)\s+usuari[oa]|no\s+(?:le\s+)?(?:digas|informes|menciones|cuentes)\s+(?:nada\s+)?(?:al|a\s+la)\s+usuari[oa])`),
	r(RuleAddressed, "es", "asistente|ia |ia,|ia:|modelo de lenguaje|chatbot|inteligencia",
		nb+`(?:(?:querido|querida|estimado|estimada|atención|hola|nota\s+para\s+el|mensaje\s+para\s+el)\s*,?\s+(?:asistente|modelo\s+de\s+lenguaje|ia|agente\s+de\s+ia|chatbot)(?:$|[^\p{L}])|si\s+eres\s+(?:un|una)\s+(?:ia|asistente|modelo\s+de\s+lenguaje|inteligencia\s+artificial|agente)(?:$|[^\p{L}])|(?:asistente|ia)\s*[,:]\s*(?:por\s+favor\s+)?(?:envía|reenvía|manda|borra|elimina|ignora|revela|ejecuta|llama|publica|comparte|transfiere))`),
	r(RuleIgnorePrevious, "es", "olvida todo|olvide todo|ignora todo",
		nb+`(?:olvida|olvide|ignora|ignore)\s+todo\s+lo\s+que\s+(?:te|se\s+te|le)\s+(?:dijeron|han\s+dicho|dije|dijo|indicaron|ordenaron)`),
	r(RuleAddressed, "es", "atención|para la ia|para el asistente|para el modelo",
		nb+`(?:atención|aviso|mensaje|nota|instrucciones?)\s*,?\s*(?:para\s+)?(?:el\s+|la\s+)?(?:modelo|ia|asistente|agente\s+de\s+ia)\s*(?:[:,]|que\s+(?:lee|procesa))`),
	r(RulePromptLeak, "es", "prompt|mensaje del sistema",
		nb+`(?:revela|muestra|imprime|repite)\s+(?:tu|el)\s+(?:prompt|mensaje)\s+(?:del|de)\s+sistema`),

	// French.
	r(RuleIgnorePrevious, "fr", "ignor|oubli|tiens pas compte|tenez pas compte|abstraction",
		nb+`(?:ignore[zr]?|oublie[zr]?|ne\s+tiens\s+pas\s+compte\s+des|ne\s+tenez\s+pas\s+compte\s+des|fais\s+abstraction\s+des|faites\s+abstraction\s+des)\s+(?:toutes\s+|tous\s+)?(?:les\s+|tes\s+|vos\s+)?(?:instructions|consignes|règles|directives|ordres)\s+(?:précédentes|antérieures|ci-dessus|du\s+système|initiales|données\s+plus\s+haut)`),
	r(RuleIgnorePrevious, "fr", "ignor|oubli",
		nb+`(?:ignore[zr]?|oublie[zr]?)\s+(?:toutes\s+)?(?:tes|vos)\s+(?:instructions|consignes|règles)`),
	r(RuleNewInstructions, "fr", "nouvelles instructions|nouvelles consignes|maintenant|désormais",
		nb+`(?:nouvelles\s+(?:instructions|consignes)\s*:|(?:tu\s+es|vous\s+êtes)\s+(?:maintenant|désormais)\s+(?:un|une)\s+(?:ia|assistant|modèle|agent)\s+(?:sans|libre|non)|(?:tu\s+es|vous\s+êtes)\s+(?:maintenant|désormais)\s+en\s+mode\s+(?:développeur|dan|libre|sans\s+restriction))`),
	r(RuleConceal, "fr", "utilisateur",
		nb+`(?:sans\s+(?:le\s+dire|en\s+informer|prévenir|avertir|informer|le\s+signaler)\s+(?:à\s+)?l['’]utilisat(?:eur|rice)|ne\s+(?:le\s+)?(?:dis|dites|mentionne|mentionnez|signale|signalez)\s+(?:rien\s+|pas\s+)(?:à\s+)?l['’]utilisat(?:eur|rice))`),
	r(RuleAddressed, "fr", "assistant|ia |ia,|ia:|ia :|modèle de langage|chatbot|intelligence",
		nb+`(?:(?:cher|chère|attention|note\s+pour\s+l['’]|message\s+pour\s+l['’]|bonjour|à\s+l['’])\s*,?\s*(?:assistant|ia|agent\s+ia|modèle\s+de\s+langage|chatbot)(?:$|[^\p{L}])|si\s+(?:tu\s+es|vous\s+êtes)\s+(?:un|une)\s+(?:ia|assistant|modèle\s+de\s+langage|intelligence\s+artificielle|agent)(?:$|[^\p{L}])|(?:assistant|ia)\s*[,:]\s*(?:s'il\s+te\s+plaît\s+|merci\s+de\s+)?(?:envoie|transfère|supprime|ignore|révèle|exécute|appelle|publie|partage))`),
	r(RuleIgnorePrevious, "fr", "oublie tout|oubliez tout|ignore tout|ignorez tout",
		nb+`(?:oublie[zr]?|ignore[zr]?)\s+tout\s+ce\s+qu['’]on\s+(?:t['’]a|vous\s+a)\s+(?:dit|demandé|indiqué)`),
	r(RulePromptLeak, "fr", "prompt|message système",
		nb+`(?:révèle|affiche|montre|répète|révélez|affichez)\s+(?:ton|le|votre)\s+(?:prompt|message)\s+(?:système|du\s+système)`),

	// German.
	r(RuleIgnorePrevious, "de", "ignorier|vergiss|vergessen|missacht|übergeh",
		nb+`(?:ignoriere|ignorieren\s+sie|ignoriert|vergiss|vergessen\s+sie|missachte|missachten\s+sie|übergehe)\s+(?:alle\s+|sämtliche\s+)?(?:die\s+)?(?:vorherigen|bisherigen|vorigen|obigen|früheren|vorangegangenen|deine|ihre|alle)\s+(?:anweisungen|instruktionen|befehle|regeln|vorgaben|richtlinien)`),
	r(RuleNewInstructions, "de", "neue anweisungen|neue instruktionen|du bist",
		nb+`(?:neue\s+(?:anweisungen|instruktionen)\s*:|du\s+bist\s+(?:jetzt|nun|ab\s+sofort)\s+(?:eine?\s+(?:ki|assistent|modell)\s+ohne|im\s+(?:entwicklermodus|dan-modus)|dan(?:$|[^\p{L}])|uneingeschränkt))`),
	r(RuleConceal, "de", "benutzer|nutzer|anwender",
		nb+`(?:ohne\s+(?:den|die)\s+(?:benutzer|nutzer|anwender)(?:in)?\s+(?:zu\s+)?(?:informieren|benachrichtigen|warnen|fragen)|(?:sag|sage|erzähl|erzähle|erwähne)\s+(?:dem|der)\s+(?:benutzer|nutzer|anwender)(?:in)?\s+nichts)`),
	r(RuleAddressed, "de", "ki |ki,|ki:|ki-|assistent|sprachmodell|chatbot|intelligenz",
		nb+`(?:(?:liebe[rs]?|achtung|hallo|hinweis\s+für\s+(?:den|die|das)|nachricht\s+an\s+(?:den|die|das))\s*,?\s*(?:ki|assistent(?:in)?|ki-assistent(?:in)?|sprachmodell|chatbot|ki-agent)(?:$|[^\p{L}])|wenn\s+du\s+(?:eine?)\s+(?:ki|assistent|sprachmodell|künstliche\s+intelligenz|ki-agent)\s+bist|(?:assistent|ki)\s*[,:]\s*(?:bitte\s+)?(?:sende|schicke|leite|lösche|ignoriere|zeige|führe|rufe|veröffentliche|teile|überweise))`),
	r(RuleIgnorePrevious, "de", "vergiss alles|vergessen sie alles|ignoriere alles",
		nb+`(?:vergiss|vergessen\s+sie|ignoriere|ignorieren\s+sie)\s+alles,?\s+was\s+(?:man\s+)?(?:dir|ihnen)\s+(?:vorher\s+|zuvor\s+|bisher\s+)?(?:gesagt|aufgetragen|befohlen)`),
	r(RuleAddressed, "de", "hinweis an|nachricht an|an das sprachmodell|an die ki",
		nb+`(?:hinweis|nachricht|anweisung)\s+an\s+(?:das|den|die)\s+(?:sprachmodell|ki|ki-assistent(?:en)?|assistent(?:en)?|chatbot)`),
	r(RulePromptLeak, "de", "prompt",
		nb+`(?:zeige|gib|wiederhole|verrate)\s+(?:mir\s+)?(?:deinen|den)\s+(?:system-?prompt|systemprompt)`),

	// Portuguese.
	r(RuleIgnorePrevious, "pt", "ignor|esqueç|esquec|desconsider|descart",
		nb+`(?:ignore|ignora|ignorar|esqueça|esqueca|esquece|desconsidere|desconsidera|descarte)\s+(?:todas\s+|todos\s+)?(?:as|os|suas|tuas)\s+(?:instruções|instrucoes|orientações|regras|ordens|diretrizes)\s+(?:anteriores|prévias|previas|acima|do\s+sistema|iniciais)`),
	r(RuleIgnorePrevious, "pt", "ignor|esqueç|esquec",
		nb+`(?:ignore|esqueça|esqueca)\s+(?:todas\s+)?(?:as\s+)?suas\s+instruções`),
	r(RuleNewInstructions, "pt", "novas instruções|agora é|a partir de agora",
		nb+`(?:novas\s+instruções\s*:|(?:você|voce|tu)\s+(?:agora\s+é|é\s+agora)\s+(?:um|uma)\s+(?:ia|assistente|modelo|agente|dan)(?:$|[^\p{L}])|a\s+partir\s+de\s+agora,?\s+(?:você|voce)\s+(?:é|será|deve\s+ignorar))`),
	r(RuleConceal, "pt", "usuári|utilizador",
		nb+`(?:sem\s+(?:contar|avisar|informar|notificar|dizer)\s+(?:nada\s+)?(?:a|ao|o|à)\s+(?:usuári[oa]|utilizador)|não\s+(?:conte|diga|informe|mencione)\s+(?:nada\s+)?(?:ao|à|a)\s+(?:usuári[oa]|utilizador))`),
	r(RuleAddressed, "pt", "assistente|ia |ia,|ia:|modelo de linguagem|chatbot|inteligência",
		nb+`(?:(?:caro|cara|prezado|prezada|atenção|olá|nota\s+para\s+o|mensagem\s+para\s+o)\s*,?\s+(?:assistente|ia|modelo\s+de\s+linguagem|agente\s+de\s+ia|chatbot)(?:$|[^\p{L}])|se\s+você\s+(?:é|for)\s+(?:um|uma)\s+(?:ia|assistente|modelo\s+de\s+linguagem|inteligência\s+artificial|agente)(?:$|[^\p{L}])|(?:assistente|ia)\s*[,:]\s*(?:por\s+favor\s+)?(?:envie|encaminhe|apague|exclua|ignore|revele|execute|chame|publique|compartilhe|transfira))`),

	r(RuleIgnorePrevious, "pt", "esqueça tudo|esqueca tudo|ignore tudo",
		nb+`(?:esqueça|esqueca|esquece|ignore)\s+tudo\s+o\s+que\s+(?:lhe|te|você)\s+(?:disseram|foi\s+dito|mandaram|pediram)`),

	// Italian.
	r(RuleIgnorePrevious, "it", "ignor|dimentic|trascur|tralasci|non considerare",
		nb+`(?:ignora|ignorate|dimentica|dimenticate|trascura|tralascia|non\s+considerare)\s+(?:tutte\s+|tutti\s+)?(?:le|i|gli)\s+(?:istruzioni|indicazioni|regole|direttive|ordini|comandi)\s+(?:precedenti|di\s+prima|sopra|del\s+sistema|iniziali)`),
	r(RuleIgnorePrevious, "it", "ignor|dimentic",
		nb+`(?:ignora|dimentica|ignorate|dimenticate)\s+(?:tutte\s+)?(?:le\s+)?(?:tue|vostre)\s+istruzioni`),
	r(RuleNewInstructions, "it", "nuove istruzioni|sei|d'ora|d’ora",
		nb+`(?:nuove\s+istruzioni\s*:|(?:ora|adesso)\s+sei\s+(?:un|una)\s+(?:ia|assistente|modello|agente)\s+(?:senza|libero|non)|d['’]ora\s+in\s+poi,?\s+(?:sei|devi\s+ignorare|agirai|ignorerai))`),
	r(RuleConceal, "it", "utente",
		nb+`(?:senza\s+(?:dirlo|dire\s+nulla|avvisare|informare|notificare)\s+(?:a\s*)?l['’]\s*utente|non\s+(?:dire|dirlo|informare|avvisare)\s+(?:nulla\s+|niente\s+)?(?:a\s*)?l['’]\s*utente)`),
	r(RuleAddressed, "it", "assistente|ia |ia,|ia:|modello linguistico|chatbot|intelligenza",
		nb+`(?:(?:caro|cara|gentile|attenzione|nota\s+per\s+l['’]|messaggio\s+per\s+l['’]|ciao)\s*,?\s*(?:assistente|ia|modello\s+linguistico|agente\s+ia|chatbot)(?:$|[^\p{L}])|se\s+sei\s+(?:un|una|un['’])\s*(?:ia|assistente|modello\s+linguistico|intelligenza\s+artificiale|agente)(?:$|[^\p{L}])|(?:assistente|ia)\s*[,:]\s*(?:per\s+favore\s+)?(?:invia|inoltra|cancella|elimina|ignora|rivela|esegui|chiama|pubblica|condividi|trasferisci))`),

	r(RuleIgnorePrevious, "it", "dimentica tutto|dimenticate tutto|ignora tutto",
		nb+`(?:dimentica|dimenticate|ignora)\s+tutto\s+(?:quello|ciò)\s+che\s+ti\s+(?:è\s+stato\s+detto|hanno\s+detto|è\s+stato\s+chiesto)`),

	// Chinese (simplified and traditional).
	r(RuleIgnorePrevious, "zh", "忽略|无视|無視|忽视|忽視|忘记|忘記|忘掉|不要理会|不要理會",
		`(?:忽略|无视|無視|忽视|忽視|不要理会|不要理會|忘记|忘記|忘掉)(?:掉)?(?:你)?(?:之前|以前|先前|上面|上述|前面|此前|以上|所有|全部|系统|系統)(?:的)?(?:所有|全部)?(?:的)?(?:指令|指示|说明|說明|提示|规则|規則|命令|要求|设定|設定)`),
	r(RuleNewInstructions, "zh", "指令|指示|现在开始|現在開始|现在起|現在起|你现在是|你現在是",
		`新(?:的)?(?:指令|指示)\s*[:：]|(?:从|從)现?現?在(?:开始|開始|起)[，,]?\s*你(?:是|必须|必須|要|将|將|只能)|你(?:现在|現在)是(?:一个|一個)?(?:没有限制|不受限制|沒有限制|DAN|开发者模式|開發者模式|邪恶|邪惡)`),
	r(RuleConceal, "zh", "用户|用戶|使用者",
		`(?:不要|别|別|切勿|不得)(?:向)?(?:告诉|告訴|通知|告知|提醒)(?:用户|用戶|使用者)|在不(?:告诉|告訴|通知|告知)(?:用户|用戶|使用者)的情况下|在不(?:告诉|告訴|通知|告知)(?:用户|用戶|使用者)的情況下`),
	r(RuleAddressed, "zh", "助手|人工智能|语言模型|語言模型",
		`(?:亲爱的|親愛的|尊敬的|致|注意)\s*(?:AI|人工智能|助手|AI助手|语言模型|語言模型|智能助手)|如果你是(?:一个|一個)?(?:AI|人工智能|助手|语言模型|語言模型|大模型)|(?:助手|AI)[，,:：]\s*(?:请|請)?(?:立即|马上|馬上)?(?:发送|發送|转发|轉發|删除|刪除|忽略|执行|執行|调用|調用|发布|發布|分享|转账|轉賬)`),
	r(RulePromptLeak, "zh", "系统提示|系統提示|初始指令",
		`(?:显示|顯示|输出|輸出|打印|透露|告诉我|告訴我|泄露|洩露)(?:你的)?(?:系统提示|系統提示|初始指令)`),

	r(RuleIgnorePrevious, "zh", "忽略|无视|無視|忘记|忘記|忘掉",
		`(?:忽略|无视|無視|忘记|忘記|忘掉)[^。！？\n]{0,10}(?:指令|指示|规则|規則|规定|規定|提示词|提示詞)`),
	r(RuleAddressed, "zh", "人工智能|助手|语言模型|語言模型|ai",
		`(?:致|给|給)[^。，,！\n]{0,12}(?:人工智能|AI|助手|语言模型|語言模型)[：:，,]`),

	// Japanese.
	r(RuleIgnorePrevious, "ja", "無視|忘れ",
		`(?:以前|前|上記|これまで|先ほど|今まで|最初|以上)の(?:すべての|全ての)?(?:指示|命令|指令|ルール|プロンプト|設定)を(?:すべて|全て)?(?:無視|忘れ)|(?:指示|命令)を(?:すべて|全て)?無視(?:して|しろ|せよ|してください)`),
	r(RuleNewInstructions, "ja", "新しい指示|新しい命令|今から|これから",
		`新しい(?:指示|命令)\s*[:：]|(?:あなたは|君は|お前は)(?:今から|これから|今後)(?:は)?(?:制限|DAN|開発者モード|すべての)`),
	r(RuleConceal, "ja", "ユーザー",
		`ユーザー(?:に|へ)(?:は)?(?:知らせ|伝え|言わ|通知し|報告し|教え)(?:ず|ないで|ることなく)`),
	r(RuleAddressed, "ja", "ai|アシスタント|言語モデル",
		`(?:AI|アシスタント|言語モデル)(?:さん)?(?:へ|に)の?(?:指示|メッセージ|お願い|命令)|もしあなたが(?:AI|アシスタント|言語モデル)|(?:アシスタント|AI)[、,:：]\s*(?:すぐに|直ちに)?(?:送信|転送|削除|無視|実行)`),
	r(RulePromptLeak, "ja", "システムプロンプト",
		`システムプロンプトを(?:表示|出力|教え|開示|見せ)`),

	r(RuleIgnorePrevious, "ja", "忘れ|無視",
		`(?:指示|命令|ルール|指令)(?:は|を)(?:すべて|全て)?(?:忘れ|無視)`),
	r(RuleAddressed, "ja", "ai|アシスタント|言語モデル",
		`(?:AI|アシスタント|言語モデル)(?:さん)?(?:へ|に)\s*[：:、,]`),

	// Russian.
	r(RuleIgnorePrevious, "ru", "игнорир|проигнорир|забудь|забуд|не обращай|отбрось",
		nb+`(?:игнорируй(?:те)?|проигнорируй(?:те)?|забудь(?:те)?|не\s+обращай(?:те)?\s+внимания\s+на|отбрось(?:те)?)\s+(?:все\s+)?(?:предыдущие|прошлые|прежние|вышеуказанные|предшествующие|свои|твои|ваши|системные|все)\s+(?:инструкции|указания|команды|правила|установки|промпты)`),
	r(RuleNewInstructions, "ru", "новые инструкции|новые указания|теперь ты|с этого момента",
		nb+`(?:новые\s+(?:инструкции|указания)\s*:|теперь\s+ты\s+(?:[—-]\s+)?(?:ии|ассистент|dan|модель|неограниченн)|с\s+этого\s+момента\s+ты\s+(?:будешь|должен|—|-|являешься))`),
	r(RuleConceal, "ru", "пользовател",
		nb+`(?:не\s+(?:говори|сообщай|рассказывай|показывай)(?:те)?\s+(?:об\s+этом\s+|ничего\s+)?пользователю|без\s+(?:ведома|уведомления|согласия)\s+пользователя)`),
	r(RuleAddressed, "ru", "ии|ассистент|языковая модель|чат-бот|искусственный|ai",
		nb+`(?:(?:дорогой|уважаемый|внимание)[,!]?\s+(?:ии|ассистент|ai|языковая\s+модель|чат-бот)(?:$|[^\p{L}])|если\s+ты\s+(?:ии|ассистент|языковая\s+модель|искусственный\s+интеллект|ai)(?:$|[^\p{L}])|(?:ассистент|ии)\s*[,:]\s*(?:пожалуйста\s+)?(?:отправь|перешли|удали|игнорируй|выполни|вызови|опубликуй))`),
	r(RulePromptLeak, "ru", "промпт|prompt",
		nb+`(?:покажи|выведи|раскрой|повтори)\s+(?:свой|твой|системный)\s+(?:системный\s+)?(?:промпт|prompt)`),
	r(RuleIgnorePrevious, "ru", "забудь|забудьте",
		nb+`забудь(?:те)?\s+вс[её],?\s+что\s+(?:тебе|вам)\s+(?:говорили|сказали|велели)`),
	r(RuleAddressed, "ru", "для ии|для нейросет|для ассистент|для модели|для бота",
		nb+`(?:сообщение|инструкция|указание|записка)\s+для\s+(?:ии|нейросети|ассистента|модели|бота|языковой\s+модели)`),
}
