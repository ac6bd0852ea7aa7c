//go:build wasip1

package main

import "github.com/airlock-dev/airlock/pdk"

//go:wasmexport post_message
func postMessageExport() int32 { return pdk.Run(postMessage) }

//go:wasmexport list_channels
func listChannelsExport() int32 { return pdk.Run(listChannels) }

//go:wasmexport channel_history
func channelHistoryExport() int32 { return pdk.Run(channelHistory) }
