#include "tests/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace imginterp::test_support {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(10);

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::vector<std::string> MergedEnvironment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string item(*entry);
    std::string name = item.substr(0, item.find('='));
    if (extra.count(name) == 0) env.push_back(std::move(item));
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Only async-signal-safe calls between fork and exec.
[[noreturn]] void RunChild(const std::vector<char*>& argv, const std::vector<char*>& envp,
                           int log_fd, int error_fd) {
  setpgid(0, 0);
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);
  // Ignored signals stay ignored across exec: restore the defaults the child expects.
  signal(SIGPIPE, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  if (log_fd >= 0) {
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
  }
  execvpe(argv[0], argv.data(), envp.data());
  int error = errno;
  ssize_t ignored = write(error_fd, &error, sizeof(error));
  (void)ignored;
  _exit(127);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    std::vector<std::string> argv, std::map<std::string, std::string> extra_env,
    std::string log_path) {
  if (argv.empty() || argv[0].empty()) {
    return absl::InvalidArgumentError("ChildProcess::Start needs a program in argv[0]");
  }
  std::vector<std::string> args = argv;
  std::vector<std::string> env = MergedEnvironment(extra_env);
  std::vector<char*> c_argv = CStrings(args);
  std::vector<char*> c_env = CStrings(env);

  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return absl::InternalError(
          absl::StrCat("cannot open log file '", log_path, "': ", std::strerror(errno)));
    }
  }
  // The child reports a failed exec through this pipe; a successful exec closes it.
  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) {
    if (log_fd >= 0) close(log_fd);
    return absl::InternalError(absl::StrCat("pipe2 failed: ", std::strerror(errno)));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int error = errno;
    close(error_pipe[0]);
    close(error_pipe[1]);
    if (log_fd >= 0) close(log_fd);
    return absl::InternalError(absl::StrCat("fork failed: ", std::strerror(error)));
  }
  if (pid == 0) RunChild(c_argv, c_env, log_fd, error_pipe[1]);

  // Also set the group from the parent so that Kill() works even before the child runs.
  setpgid(pid, pid);
  close(error_pipe[1]);
  if (log_fd >= 0) close(log_fd);
  int exec_error = 0;
  ssize_t n;
  do {
    n = read(error_pipe[0], &exec_error, sizeof(exec_error));
  } while (n < 0 && errno == EINTR);
  close(error_pipe[0]);
  if (n == sizeof(exec_error)) {
    int status = 0;
    waitpid(pid, &status, 0);
    std::string message =
        absl::StrCat("cannot run '", absl::StrJoin(argv, " "), "': ", std::strerror(exec_error));
    if (exec_error == ENOENT) return absl::NotFoundError(message);
    return absl::InternalError(message);
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, std::move(argv), std::move(log_path)));
}

ChildProcess::~ChildProcess() {
  if (Running()) Kill();
}

void ChildProcess::Reap(bool block) {
  if (exit_status_.has_value()) return;
  int status = 0;
  pid_t result;
  do {
    result = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (result < 0 && errno == EINTR);
  if (result == pid_) {
    exit_status_ = DecodeWaitStatus(status);
  } else if (result < 0) {
    exit_status_ = -1;  // Not our child any more (reaped elsewhere): treat as gone.
  }
}

bool ChildProcess::Running() {
  Reap(/*block=*/false);
  return !exit_status_.has_value();
}

absl::Status ChildProcess::Signal(int signal) {
  if (!Running()) {
    return absl::FailedPreconditionError(
        absl::StrCat("process ", pid_, " (", argv_[0], ") has already exited"));
  }
  if (kill(pid_, signal) != 0) {
    return absl::InternalError(
        absl::StrCat("kill(", pid_, ", ", signal, ") failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void ChildProcess::Kill() {
  if (!Running()) return;
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
  Reap(/*block=*/true);
}

int ChildProcess::Terminate(std::chrono::milliseconds timeout) {
  if (Running()) {
    kill(pid_, SIGTERM);
    if (!WaitExit(timeout).has_value()) Kill();
  }
  return exit_status_.value_or(-1);
}

std::optional<int> ChildProcess::WaitExit(std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Running()) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
  return exit_status_;
}

namespace {

// A port the kernel just had free on 127.0.0.1 (bind to port 0, read it, close); -1 on failure.
int PortTheKernelPicks() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  int port = -1;
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace

int FreeLoopbackPort() {
  // The kernel may hand out the port it just released again: a gateway once got the same port
  // for gRPC and metrics, and its gRPC server could not bind. Ports given out before are skipped.
  static std::mutex mutex;
  static std::set<int> given;
  std::lock_guard<std::mutex> lock(mutex);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = PortTheKernelPicks();
    if (port < 0) return -1;
    if (given.insert(port).second) return port;
  }
  return -1;
}

std::string MakeTempDir(const std::string& prefix) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp", "/", prefix, "XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) return std::string();
  return pattern;
}

void RemoveTree(const std::string& path) {
  if (path.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

bool WaitForTcpPort(int port, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      address.sin_port = htons(static_cast<uint16_t>(port));
      bool connected = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
      close(fd);
      if (connected) return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace imginterp::test_support
