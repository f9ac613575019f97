// net_test.hpp - loopback helpers for the socket and I/O-engine tests (header-only).
//
//   open_fds()                  entries of /proc/self/fd now (count before and after: no leak)
//   Listener(backlog)           a non-blocking TCP listener on 127.0.0.1, port picked by the kernel
//   tcp_socket()                a non-blocking TCP socket, not connected
//   connect_to(port)            a TCP connection to 127.0.0.1:port, set up (bounded real-time wait)
//   has_pending_connection(fd)  whether a listener has a connection waiting (takes none)
//   TempDir                     a temporary directory for Unix socket paths, removed with them
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "asyncio_test.hpp"

namespace asyncio_test {

/// Entries of /proc/self/fd (the directory's own fd included, the same each time).
inline std::size_t open_fds() {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

/// A TCP listener on 127.0.0.1, port chosen by the kernel.
struct Listener {
  FdGuard fd;
  std::uint16_t port = 0;
  explicit Listener(int backlog = 64) {
    fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) throw std::system_error(errno, std::generic_category(), "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||  // NOLINT
        ::listen(fd.get(), backlog) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {  // NOLINT
      throw std::system_error(errno, std::generic_category(), "listen");
    }
    port = ntohs(a.sin_port);
  }
};

/// A non-blocking TCP socket, not connected.
inline FdGuard tcp_socket() {
  FdGuard s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s) throw std::system_error(errno, std::generic_category(), "socket");
  return s;
}

/// Starts a connection to 127.0.0.1:`port` and waits (real time, bounded) until it is set up.
inline FdGuard connect_to(std::uint16_t port) {
  FdGuard s = tcp_socket();
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {  // NOLINT
    if (errno != EINPROGRESS) throw std::system_error(errno, std::generic_category(), "connect");
    pollfd p{s.get(), POLLOUT, 0};
    if (::poll(&p, 1, 5000) != 1) throw std::runtime_error("connect did not complete in 5 s");
  }
  return s;
}

/// Whether a listener has a connection waiting in its accept queue (peeked: none is taken).
inline bool has_pending_connection(int lfd) {
  pollfd p{lfd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

/// A temporary directory for Unix socket paths (/tmp/asyncio-test-XXXXXX), removed with the
/// files handed out by file().
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/asyncio-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    for (const std::string& f : files_) ::unlink(f.c_str());
    ::rmdir(path_.c_str());
  }
  /// A path inside the directory (removed with it).
  std::string file(const std::string& name) {
    files_.push_back(path_ + "/" + name);
    return files_.back();
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

}  // namespace asyncio_test
