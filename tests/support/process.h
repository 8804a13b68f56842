// Child processes, ports and temp dirs for tests that run real servers (nats-server, the model
// services, the gateway).
//
// ChildProcess is externally synchronized (use it from one thread at a time); the free functions
// are thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace imginterp::test_support {

// A forked and exec'ed process in its own process group. Exit statuses are reported the way a
// shell does: the exit code for a normal exit, 128 + signal number when a signal killed it.
// The destructor kills the whole group (SIGKILL) if the process is still running and reaps it.
class ChildProcess {
 public:
  // Runs argv[0] (looked up on PATH when it has no '/') with the current environment plus
  // `extra_env` (which overrides). stdout and stderr are appended to `log_path` when given,
  // otherwise inherited. The signal mask is cleared in the child. INVALID_ARGUMENT for an empty
  // argv; NOT_FOUND / INTERNAL when exec or fork fails (the exec error is reported, not hidden
  // in the log).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      std::vector<std::string> argv, std::map<std::string, std::string> extra_env = {},
      std::string log_path = "");
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::vector<std::string>& argv() const { return argv_; }
  const std::string& log_path() const { return log_path_; }

  // Sends `signal` to the process (not its group). FAILED_PRECONDITION once it has exited.
  absl::Status Signal(int signal);
  // SIGKILL to the whole process group, then waits for the exit.
  void Kill();
  // SIGTERM, then SIGKILL to the group if it has not exited after `timeout`. Returns the exit
  // status.
  int Terminate(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // False once the process has exited (it is reaped then).
  bool Running();
  // The exit status, or nullopt if it is still running after `timeout`.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);

 private:
  ChildProcess(pid_t pid, std::vector<std::string> argv, std::string log_path)
      : pid_(pid), argv_(std::move(argv)), log_path_(std::move(log_path)) {}
  // Reaps the process if it has exited; `block` waits for it.
  void Reap(bool block);

  pid_t pid_;
  std::vector<std::string> argv_;
  std::string log_path_;
  std::optional<int> exit_status_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close); -1 on
// failure. Another process may take it before it is used, so callers retry on bind errors. Never
// the same port twice in one process, so that a server's several ports differ. Thread-safe.
int FreeLoopbackPort();

// Creates a fresh directory "<TMPDIR or /tmp>/<prefix>XXXXXX" and returns its path ("" on
// failure).
std::string MakeTempDir(const std::string& prefix);

// Removes a directory tree; errors are ignored (test cleanup).
void RemoveTree(const std::string& path);

// True once a TCP connection to 127.0.0.1:`port` succeeds, false after `timeout`.
bool WaitForTcpPort(int port, std::chrono::milliseconds timeout);

}  // namespace imginterp::test_support
