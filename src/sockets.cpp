// The low-level socket API (Python: BaseSelectorEventLoop.sock_recv, sock_recv_into,
// sock_sendall, sock_connect, sock_accept), over the loop's I/O engine.
#include "asyncio/sockets.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include <sys/socket.h>

#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/tasks.hpp"
#include "sys/sys.hpp"
#include "unix/io_await.hpp"
#include "unix/loop_io.hpp"

namespace asyncio {
namespace detail {

Coro<long> io_receive(OpKind kind, int fd, void* buf, std::size_t n) {
  LoopIo& io = io_of(get_running_loop());
  for (;;) {
    if (io.has_stash()) [[unlikely]] {
      if (const std::size_t k = io.take_stash(fd, static_cast<char*>(buf), n); k > 0) {
        co_return static_cast<long>(k);
      }
    }
    const long r = co_await OpAwaiter(kind, fd, buf, n);
    if (r != OpAwaiter::kReceiveAgain) co_return r;
    // Bytes for this fd were stashed while we waited (a cancelled receive got them): take them.
  }
}

Coro<long> io_transmit(OpKind kind, int fd, const void* buf, std::size_t n) {
  // The engines never write through the pointer of a send or a write.
  co_return co_await OpAwaiter(kind, fd, const_cast<void*>(buf), n);  // NOLINT
}

Coro<long> io_sendmsg(int fd, const msghdr* msg) {
  OpAwaiter op(OpKind::sendmsg, fd);
  op.set_message(msg);
  co_return co_await op;
}

Coro<long> io_wait_ready(int fd, bool write) {
  const long r = co_await OpAwaiter(write ? OpKind::poll_out : OpKind::poll_in, fd);
  co_return r < 0 ? r : 0;
}

}  // namespace detail

namespace {

void make_nonblocking(int fd, const char* what) {
  if (const int r = sys::set_nonblocking(fd); r < 0) raise_os_error(-r, what);
}
/// RuntimeError when a transport uses `fd` (Python checks when the call would wait; here
/// always: such a call would race the transport for its bytes either way).
void check_no_transport(int fd) {
  detail::io_of(get_running_loop()).check_no_transport(fd);
}

}  // namespace

Coro<std::string> sock_recv(int fd, std::size_t n) {
  check_no_transport(fd);
  std::string data(n, '\0');
  if (n == 0) co_return data;
  const long r = co_await detail::io_receive(detail::OpKind::recv, fd, data.data(), n);
  if (r < 0) raise_os_error(static_cast<int>(-r), "recv");
  data.resize(static_cast<std::size_t>(r));
  co_return data;
}

Coro<std::size_t> sock_recv_into(int fd, std::span<std::byte> buf) {
  check_no_transport(fd);
  if (buf.empty()) co_return 0;
  const long r = co_await detail::io_receive(detail::OpKind::recv, fd, buf.data(), buf.size());
  if (r < 0) raise_os_error(static_cast<int>(-r), "recv");
  co_return static_cast<std::size_t>(r);
}

Coro<void> sock_sendall(int fd, std::string_view data) {
  check_no_transport(fd);
  std::size_t sent = 0;
  while (sent < data.size()) {
    const long r = co_await detail::io_transmit(detail::OpKind::send, fd, data.data() + sent,
                                                data.size() - sent);
    if (r < 0) raise_os_error(static_cast<int>(-r), "send");
    sent += static_cast<std::size_t>(r);
  }
}

Coro<void> sock_connect(int fd, SocketAddress address) {
  check_no_transport(fd);
  make_nonblocking(fd, "sock_connect");
  const std::string what = "connect to " + address.to_string();
  int r = sys::connect(fd, address.data(), address.size());
  // EAGAIN: a Unix socket whose listener's backlog is full. Nothing tells when it has room (the
  // socket is not connecting: it never becomes writable), so try again after a pause that
  // doubles from 1 ms to 100 ms. (Python waits for writability and then believes it connected.)
  for (double pause = 0.001; r == -EAGAIN; pause = std::min(pause * 2, 0.1)) {
    co_await sleep(pause);
    r = sys::connect(fd, address.data(), address.size());
  }
  if (r == 0) co_return;
  // EALREADY: an earlier connect of this socket (cancelled while it waited) is still in
  // progress; wait for it, as Python does (EALREADY is a BlockingIOError there).
  if (r != -EINPROGRESS && r != -EALREADY) raise_os_error(-r, what);
  const long w = co_await detail::io_wait_ready(fd, true);
  if (w < 0) raise_os_error(static_cast<int>(-w), what);
  const int err = sys::socket_error(fd);
  if (err != 0) raise_os_error(err < 0 ? -err : err, what);
}

Coro<AcceptedSocket> sock_accept(int fd) {
  check_no_transport(fd);
  make_nonblocking(fd, "sock_accept");
  for (;;) {
    AcceptedSocket accepted;
    unsigned len = SocketAddress::capacity();
    const int r = sys::accept(fd, accepted.address.data(), &len);
    if (r >= 0) {
      accepted.fd = r;
      accepted.address.set_size(len);
      co_return accepted;
    }
    if (r != -EAGAIN) raise_os_error(-r, "accept");
    // Wait until a connection is there. Nothing is taken from the kernel until the accept
    // itself, so a cancelled wait leaves the connection to the next accept.
    const long w = co_await detail::io_wait_ready(fd, false);
    if (w < 0) raise_os_error(static_cast<int>(-w), "accept");
  }
}

}  // namespace asyncio
