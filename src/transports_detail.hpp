// Internal: the part of create_connection() that the tests reach directly (src/transports.cpp).
#pragma once

#include <vector>

#include "asyncio/coroutines.hpp"
#include "asyncio/sockets.hpp"
#include "asyncio/transports.hpp"

namespace asyncio::detail {

/// Connects to one of `infos`' addresses as create_connection() does: in order, or with happy
/// eyeballs (options.happy_eyeballs_delay, options.interleave); binds options.local_addr first.
/// The connected socket (owned by the caller), or the OSError(s) of the attempts.
Coro<int> connect_addresses(std::vector<AddrInfo> infos, ConnectionOptions options);

}  // namespace asyncio::detail
