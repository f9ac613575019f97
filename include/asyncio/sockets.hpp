// asyncio/sockets.hpp - the low-level socket API (Python: loop.sock_recv, sock_recv_into,
// sock_sendall, sock_connect, sock_accept, loop.getaddrinfo, loop.getnameinfo).
//
// Free functions on the running loop, on socket fds that the caller owns. sock_accept and
// sock_connect make the fd non-blocking (Python requires sock.setblocking(False)); receives
// and sends never block the loop even on a blocking fd (MSG_DONTWAIT). Whichever I/O engine the
// loop runs (epoll or io_uring), a cancelled call consumes nothing: a cancelled receive leaves its
// bytes to the next receive on that fd, a cancelled accept leaves its connection to the next
// accept (docs/design/io.md). A peer that went away raises an OSError (BrokenPipeError,
// ConnectionResetError...), never SIGPIPE.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sys/socket.h>

#include "asyncio/coroutines.hpp"

namespace asyncio {

/// A socket address: IPv4, IPv6 or a Unix-domain path. Python: the address tuples
/// (`(host, port)`, `(host, port, flowinfo, scope_id)`, a path string).
class SocketAddress {
 public:
  SocketAddress() noexcept = default;
  /// From a raw address of `length` bytes (ValueError if longer than sockaddr_storage).
  SocketAddress(const sockaddr* addr, socklen_t length);
  /// A numeric IPv4 or IPv6 address and a port: `SocketAddress::ip("127.0.0.1", 8080)`,
  /// `ip("::1", 0)`. ValueError for anything that is not a numeric address (names are resolved
  /// with getaddrinfo()).
  static SocketAddress ip(std::string_view host, std::uint16_t port);
  /// A Unix-domain socket path (ValueError if too long). A leading '\0' names an abstract one.
  static SocketAddress unix_path(std::string_view path);

  /// AF_INET, AF_INET6, AF_UNIX (AF_UNSPEC when empty).
  [[nodiscard]] int family() const noexcept;
  /// The numeric host ("127.0.0.1", "::1"); empty for a Unix address.
  [[nodiscard]] std::string host() const;
  /// The port (0 for a Unix address).
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// The path of a Unix address (empty otherwise).
  [[nodiscard]] std::string path() const;
  /// "127.0.0.1:8080", "[::1]:8080", or the path.
  [[nodiscard]] std::string to_string() const;

  [[nodiscard]] const sockaddr* data() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage_);  // NOLINT: the sockaddr idiom
  }
  [[nodiscard]] sockaddr* data() noexcept {
    return reinterpret_cast<sockaddr*>(&storage_);  // NOLINT: the sockaddr idiom
  }
  [[nodiscard]] socklen_t size() const noexcept { return length_; }
  /// The capacity, for calls that fill an address in (then set_size()).
  static constexpr socklen_t capacity() noexcept { return sizeof(sockaddr_storage); }
  void set_size(socklen_t length) noexcept { length_ = length; }

  friend bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;

 private:
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

/// What sock_accept() returns: the new connection (non-blocking, close-on-exec, owned by the
/// caller) and the peer's address. `auto [fd, peer] = co_await sock_accept(listener);`
/// Python: the `(conn, address)` pair of loop.sock_accept()
struct AcceptedSocket {
  int fd = -1;
  SocketAddress address;
};

/// Python: loop.sock_recv(sock, n): up to `n` bytes; empty at end of file.
Coro<std::string> sock_recv(int fd, std::size_t n);
/// Python: loop.sock_recv_into(sock, buf): reads into `buf` (which must live until the call
/// ends); returns the number of bytes read (0 at end of file).
Coro<std::size_t> sock_recv_into(int fd, std::span<std::byte> buf);
/// Python: loop.sock_sendall(sock, data): sends every byte of `data` (which must live until the
/// call ends). If cancelled, part of the data may have been sent, as in Python.
Coro<void> sock_sendall(int fd, std::string_view data);
/// Python: loop.sock_connect(sock, address). ConnectionRefusedError and the like on failure.
Coro<void> sock_connect(int fd, SocketAddress address);
/// Python: loop.sock_accept(sock)
Coro<AcceptedSocket> sock_accept(int fd);

/// What sock_recvfrom() returns: one datagram (truncated to the size asked for) and its sender.
/// `auto [data, addr] = co_await sock_recvfrom(fd, 2048);`
struct Datagram {
  std::string data;
  SocketAddress address;
};

/// Python 3.11: loop.sock_recvfrom(sock, bufsize): one datagram of at most `n` bytes (the rest
/// of a longer one is dropped, as recvfrom does) and its sender. OSError for an error the socket
/// reports (ConnectionRefusedError after an ICMP "port unreachable" on a connected socket).
Coro<Datagram> sock_recvfrom(int fd, std::size_t n);
/// Python 3.11: loop.sock_sendto(sock, data, address): sends `data` as one datagram; the bytes
/// sent.
Coro<std::size_t> sock_sendto(int fd, std::string_view data, SocketAddress address);

/// A UDP (or Unix datagram) socket to use with coroutines: `co_await sock.recvfrom()`,
/// `co_await sock.sendto(data, addr)`. Owns its fd (closed by the destructor or close()).
/// Move-only. Python has no such class: it is socket.socket(type=SOCK_DGRAM) used with the
/// loop's sock_recvfrom() and sock_sendto().
class DatagramSocket {
 public:
  DatagramSocket() noexcept = default;
  /// Takes over the datagram socket `fd` (made non-blocking).
  explicit DatagramSocket(int fd);
  DatagramSocket(DatagramSocket&& other) noexcept;
  DatagramSocket& operator=(DatagramSocket&& other) noexcept;
  DatagramSocket(const DatagramSocket&) = delete;
  DatagramSocket& operator=(const DatagramSocket&) = delete;
  ~DatagramSocket();

  /// A socket bound to `local` (port 0: a free one; see local_address()).
  static DatagramSocket bind(const SocketAddress& local);
  /// A socket connected to `remote` (bound to a free local port): send()/recv() talk to it,
  /// only its datagrams are received, and ICMP errors surface as ConnectionRefusedError.
  static DatagramSocket connect(const SocketAddress& remote);

  /// One datagram of at most `n` bytes and its sender (as sock_recvfrom()).
  Coro<Datagram> recvfrom(std::size_t n = 65536) const;
  /// Sends `data` as one datagram to `address`; the bytes sent.
  Coro<std::size_t> sendto(std::string_view data, SocketAddress address) const;
  /// A connected socket's datagram (at most `n` bytes).
  Coro<std::string> recv(std::size_t n = 65536) const;
  /// Sends `data` to the connected address.
  Coro<std::size_t> send(std::string_view data) const;
  /// The address it is bound to.
  [[nodiscard]] SocketAddress local_address() const;
  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// Gives the fd up without closing it (to hand it to create_datagram_endpoint's `sock`).
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  /// Closes the socket now (idempotent).
  void close() noexcept;

 private:
  int fd_ = -1;
};

/// What getaddrinfo() is asked for (0: any). Python: getaddrinfo's family/type/proto/flags.
struct AddrInfoHints {
  int family = AF_UNSPEC;
  int type = 0;
  int protocol = 0;
  int flags = 0;
};

/// One result of getaddrinfo(). Python: the `(family, type, proto, canonname, sockaddr)` tuple.
struct AddrInfo {
  int family = 0;
  int type = 0;
  int protocol = 0;
  std::string canonname;
  SocketAddress address;
};

/// Resolves `host` and `port` (a number or a service name; either may be empty) on the default
/// executor, so the loop never blocks. An unknown name raises OSError with the resolver's
/// message (Python: socket.gaierror). Python: loop.getaddrinfo(host, port, ...)
Coro<std::vector<AddrInfo>> getaddrinfo(std::string host, std::string port,
                                        AddrInfoHints hints = {});

/// What getnameinfo() returns. Python: the `(host, port)` pair.
struct NameInfo {
  std::string host;
  std::string service;
};

/// Reverse resolution on the default executor. Python: loop.getnameinfo(sockaddr, flags)
Coro<NameInfo> getnameinfo(SocketAddress address, int flags = 0);

}  // namespace asyncio
