#include "services/core/common/http_get.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imginterp::common {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

TEST(ParseHttpUrl, ReadsHostPortAndPath) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl("http://127.0.0.1:9101/metrics");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 9101);
  EXPECT_EQ(url->path, "/metrics");

  url = ParseHttpUrl("http://localhost");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->port, 80);
  EXPECT_EQ(url->path, "/");

  url = ParseHttpUrl("http://[::1]:8080/x?y=1");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 8080);
  EXPECT_EQ(url->path, "/x?y=1");
}

TEST(ParseHttpUrl, RejectsOtherSchemesAndBadPorts) {
  EXPECT_EQ(ParseHttpUrl("https://a:1/").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHttpUrl("127.0.0.1:9101").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHttpUrl("http://:9101/").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHttpUrl("http://a:0/").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHttpUrl("http://a:99999/").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHttpUrl("http://a:x/").status().code(), absl::StatusCode::kInvalidArgument);
}

// A loopback server that answers one connection with `answer` and records the request.
class OneShotServer {
 public:
  explicit OneShotServer(std::string answer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    socklen_t length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    ::listen(fd_, 1);
    thread_ = std::thread([this, answer = std::move(answer)] {
      const int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      char buffer[4096];
      const ssize_t n = ::recv(client, buffer, sizeof(buffer), 0);
      if (n > 0) request_.assign(buffer, static_cast<size_t>(n));
      ::send(client, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(client);
    });
  }
  ~OneShotServer() {
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  // What the client sent; waits for the answer to have been sent.
  const std::string& request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::string request_;
  std::thread thread_;
};

TEST(HttpGet, ReturnsTheBodyOfA200) {
  OneShotServer server("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nup 1\n");
  absl::StatusOr<std::string> body =
      HttpGet({"127.0.0.1", server.port(), "/metrics"}, milliseconds(2000));
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "up 1\n");
  EXPECT_THAT(server.request(), HasSubstr("GET /metrics HTTP/1.0\r\n"));
}

TEST(HttpGet, UndoesChunkedTransferEncoding) {
  OneShotServer server(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nup 1\n\r\n6\r\ndown "
      "0\r\n0\r\n\r\n");
  absl::StatusOr<std::string> body = HttpGet({"127.0.0.1", server.port(), "/"}, milliseconds(2000));
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "up 1\ndown 0");
}

TEST(HttpGet, AnotherStatusIsAFailedPrecondition) {
  OneShotServer server("HTTP/1.1 404 Not Found\r\n\r\nno");
  absl::StatusOr<std::string> body = HttpGet({"127.0.0.1", server.port(), "/"}, milliseconds(2000));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(body.status().message(), HasSubstr("404"));
}

TEST(HttpGet, NobodyListeningIsUnavailable) {
  int port;
  {
    OneShotServer closed("");
    port = closed.port();
  }
  absl::StatusOr<std::string> body = HttpGet({"127.0.0.1", port, "/"}, milliseconds(2000));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(), HasSubstr("cannot connect"));
}

}  // namespace
}  // namespace imginterp::common
