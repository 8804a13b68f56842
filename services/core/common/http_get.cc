#include "services/core/common/http_get.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace imginterp::common {
namespace {

// Owns a socket descriptor.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

std::string Where(const HttpUrl& url) {
  return absl::StrCat("http://", url.host, ":", url.port, url.path);
}

// Undoes Transfer-Encoding: chunked; returns false on a malformed body.
bool Dechunk(absl::string_view body, std::string* out) {
  while (true) {
    const size_t eol = body.find("\r\n");
    if (eol == absl::string_view::npos) return false;
    absl::string_view size_text = body.substr(0, eol);
    size_text = size_text.substr(0, size_text.find(';'));
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(size_text), &size)) return false;
    body.remove_prefix(eol + 2);
    if (size == 0) return true;
    if (body.size() < size) return false;
    out->append(body.data(), size);
    body.remove_prefix(size);
    if (!absl::ConsumePrefix(&body, "\r\n")) return false;
  }
}

}  // namespace

absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", url, "' is not an http:// URL (expected http://host:port/metrics)"));
  }
  HttpUrl parsed;
  const size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  if (slash != absl::string_view::npos) parsed.path = std::string(rest.substr(slash));
  absl::string_view port_text;
  if (absl::ConsumePrefix(&authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", url, "': unterminated [IPv6] host"));
    }
    parsed.host = std::string(authority.substr(0, close));
    absl::string_view after = authority.substr(close + 1);
    if (absl::ConsumePrefix(&after, ":")) port_text = after;
  } else {
    const size_t colon = authority.rfind(':');
    parsed.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (parsed.host.empty())
    return absl::InvalidArgumentError(absl::StrCat("'", url, "' has no host"));
  if (!port_text.empty() &&
      (!absl::SimpleAtoi(port_text, &parsed.port) || parsed.port < 1 || parsed.port > 65535)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", url, "': port '", port_text, "' is not in 1..65535"));
  }
  return parsed;
}

absl::StatusOr<std::string> HttpGet(const HttpUrl& url, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  const std::string port = std::to_string(url.port);
  if (int error = getaddrinfo(url.host.c_str(), port.c_str(), &hints, &addresses); error != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", url.host, " for ", Where(url), ": ", gai_strerror(error)));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(addresses, freeaddrinfo);
  timeval limit{};
  limit.tv_sec = timeout.count() / 1000;
  limit.tv_usec = (timeout.count() % 1000) * 1000;

  std::string connect_error = "no address";
  for (addrinfo* address = addresses; address != nullptr; address = address->ai_next) {
    Socket socket(::socket(address->ai_family, address->ai_socktype, address->ai_protocol));
    if (socket.fd() < 0) continue;
    // On Linux the send timeout also bounds connect().
    setsockopt(socket.fd(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
    setsockopt(socket.fd(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    if (::connect(socket.fd(), address->ai_addr, address->ai_addrlen) != 0) {
      connect_error = std::strerror(errno);
      continue;
    }
    const std::string request =
        absl::StrCat("GET ", url.path, " HTTP/1.0\r\nHost: ", url.host, ":", url.port,
                     "\r\nAccept: text/plain\r\nConnection: close\r\n\r\n");
    if (::send(socket.fd(), request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      return absl::UnavailableError(
          absl::StrCat("sending the request to ", Where(url), ": ", std::strerror(errno)));
    }
    std::string response;
    char buffer[65536];
    while (true) {
      const ssize_t n = ::recv(socket.fd(), buffer, sizeof(buffer), 0);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        return absl::UnavailableError(
            absl::StrCat("reading ", Where(url), ": ", std::strerror(errno)));
      }
      response.append(buffer, static_cast<size_t>(n));
    }
    const size_t header_end = response.find("\r\n\r\n");
    if (header_end == std::string::npos) {
      return absl::UnavailableError(
          absl::StrCat(Where(url),
                       " closed the connection before a full HTTP answer (is it the metrics "
                       "port, not the gRPC port?)"));
    }
    const absl::string_view head(response.data(), header_end);
    const absl::string_view status_line = head.substr(0, head.find("\r\n"));
    if (!absl::StartsWith(status_line, "HTTP/") || status_line.find(" 200") == std::string::npos) {
      return absl::FailedPreconditionError(
          absl::StrCat(Where(url), " answered '", status_line, "', not 200"));
    }
    std::string body = response.substr(header_end + 4);
    if (absl::StrContains(absl::AsciiStrToLower(head), "transfer-encoding: chunked")) {
      std::string plain;
      if (!Dechunk(body, &plain)) {
        return absl::UnavailableError(absl::StrCat(Where(url), ": malformed chunked body"));
      }
      body = std::move(plain);
    }
    return body;
  }
  return absl::UnavailableError(
      absl::StrCat("cannot connect to ", Where(url), ": ", connect_error));
}

}  // namespace imginterp::common
