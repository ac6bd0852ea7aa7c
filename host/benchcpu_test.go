package host_test

import "github.com/airlock-dev/airlock/internal/testenv"

// reportCPU reports the process's CPU time per op (cpu-ns/op) beside the wall time.
var reportCPU = testenv.ReportCPU
