//go:build wasip1

package main

import "github.com/airlock-dev/airlock/pdk"

//go:wasmexport soql_query
func soqlQueryExport() int32 { return pdk.Run(soqlQuery) }

//go:wasmexport get_record
func getRecordExport() int32 { return pdk.Run(getRecord) }

//go:wasmexport create_record
func createRecordExport() int32 { return pdk.Run(createRecord) }

//go:wasmexport update_record
func updateRecordExport() int32 { return pdk.Run(updateRecord) }

//go:wasmexport update_opportunity_stage
func updateOpportunityStageExport() int32 { return pdk.Run(updateOpportunityStage) }

//go:wasmexport add_note
func addNoteExport() int32 { return pdk.Run(addNote) }
