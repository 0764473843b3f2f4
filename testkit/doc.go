// Package testkit holds the helpers that mxedge's tests share: components
// taken from PATH ([Require]) and started on loopback ([StartRedis]), port
// ranges ([PortRange], [FreePort]), a fake clock ([Clock]), log capture
// ([LogRecorder], [Buffer]), the mxedge binary built once per test process
// ([MxedgeBinary]) and run as a watched subprocess ([StartMxedge], [Proc]),
// files written into the test's temporary directory ([TempFile],
// [Golden]), and a raw-bytes HTTP/1.1 upstream scripted by the test
// ([RawUpstream]).
//
// It is imported by tests only. Every helper takes the test's testing.TB,
// fails the test itself on an error, and undoes what it started in the
// test's Cleanup: a process is stopped by its PID, never by name. Nothing
// waits by sleeping: readiness is a log line, a port accepting or a
// readiness answer.
//
// A component missing from PATH skips the test, except under
// MXEDGE_REQUIRE_COMPONENTS=1 (set by `make test`), where it fails it.
package testkit
