// airlock console: keeps a live list up to date by fetching its server-rendered HTML again
// every few seconds (the server escapes everything in it; no data is turned into markup here).
"use strict";
(function () {
  var el = document.querySelector("[data-refresh]");
  if (!el) return;
  var url = el.getAttribute("data-refresh");
  function refresh() {
    // Skip while the admin is typing a reason, so the form is not replaced under their hands.
    if (el.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || r.status === 401) { window.location = "/console/signin?why=idle"; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null || html === undefined) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        el.replaceChildren.apply(el, Array.prototype.slice.call(doc.body.childNodes));
      })
      .catch(function () {});
  }
  setInterval(refresh, 3000);
})();
