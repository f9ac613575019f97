// Internal: the part of create_connection() that the tests reach directly, the pipe transports
// of child processes, and the socket helpers the datagram endpoints share (src/transports.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "asyncio/coroutines.hpp"
#include "asyncio/sockets.hpp"
#include "asyncio/transports.hpp"
#include "sys/sys.hpp"

namespace asyncio::detail {

/// Connects to one of `infos`' addresses as create_connection() does: in order, or with happy
/// eyeballs (options.happy_eyeballs_delay, options.interleave); binds options.local_addr first.
/// The connected socket (owned by the caller), or the OSError(s) of the attempts.
Coro<int> connect_addresses(std::vector<AddrInfo> infos, ConnectionOptions options);

/// A new non-blocking, close-on-exec socket (OSError naming `what` when it cannot be made).
sys::Fd new_socket(int family, const char* what, int type = SOCK_STREAM);
/// The local (or, with `peer`, the remote) address of the socket `fd`; empty when unknown.
SocketAddress socket_address(int fd, bool peer);
/// Removes the socket file at `path` left by an earlier run (not any other kind of file, not an
/// abstract name), before a bind there. Python does so for Unix servers and datagram endpoints.
void remove_stale_unix_socket(const std::string& path);

/// What a stream transport runs over.
enum class Medium : std::uint8_t { socket, read_pipe, write_pipe };

/// A transport over the end of a pipe `fd` (taken over and made non-blocking; closed by the
/// transport, or here if this throws): a read pipe feeds `protocol` until the end of the data,
/// then closes; a write pipe is written to and closes once the reading end is gone. Calls
/// connection_made at once. Python: loop.connect_read_pipe / connect_write_pipe
std::shared_ptr<Transport> make_pipe_transport(EventLoop& loop, int fd, Medium medium,
                                               std::shared_ptr<BaseProtocol> protocol);

}  // namespace asyncio::detail
