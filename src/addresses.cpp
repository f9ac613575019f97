// Socket addresses and name resolution (Python: the address tuples of Modules/socketmodule.c,
// loop.getaddrinfo and loop.getnameinfo of Lib/asyncio/base_events.py).
//
// SocketAddress is a sockaddr_storage and a length, built the way CPython's getsockaddrarg()
// builds one, so that an address we build compares equal to the one the kernel returns for
// the same socket (getsockname, accept). The resolver calls block, so they run on the loop's
// default executor, as in Python; nothing here touches the loop from the executor's thread.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/executors.hpp"
#include "asyncio/futures.hpp"
#include "asyncio/sockets.hpp"

namespace asyncio {

namespace {

constexpr socklen_t kSunPathOffset = offsetof(sockaddr_un, sun_path);
constexpr std::size_t kSunPathSize = sizeof(sockaddr_un::sun_path);

// The concrete sockaddr kinds are read and written through memcpy, never through a cast
// pointer, so no object is accessed through a type it does not have.
template <class T>
T load(const sockaddr_storage& storage) noexcept {
  T out;
  std::memcpy(&out, &storage, sizeof out);
  return out;
}

template <class T>
void store(sockaddr_storage& storage, const T& value) noexcept {
  std::memcpy(&storage, &value, sizeof value);
}

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

/// The interface index named by an IPv6 scope ("lo", or a number such as "2"); 0 when none.
unsigned scope_index(const std::string& scope) {
  if (const unsigned index = ::if_nametoindex(scope.c_str()); index != 0) return index;
  if (scope.empty() || scope.find_first_not_of("0123456789") != std::string::npos) return 0;
  try {
    const unsigned long index = std::stoul(scope);
    return index <= UINT32_MAX ? static_cast<unsigned>(index) : 0;
  } catch (const std::out_of_range&) {
    return 0;
  }
}

/// Parses a numeric IPv6 host, with an optional "%scope"; false when it is not one.
bool parse_ipv6(std::string_view host, std::uint16_t port, sockaddr_in6& out) {
  const std::size_t percent = host.find('%');
  const std::string address(host.substr(0, percent));
  out = sockaddr_in6{};
  out.sin6_family = AF_INET6;
  out.sin6_port = htons(port);
  if (::inet_pton(AF_INET6, address.c_str(), &out.sin6_addr) != 1) return false;
  if (percent == std::string_view::npos) return true;
  const std::string scope(host.substr(percent + 1));
  out.sin6_scope_id = scope_index(scope);
  if (out.sin6_scope_id == 0) {
    throw ValueError("SocketAddress::ip: unknown IPv6 scope " + quoted(scope) + " in " +
                     quoted(host) + " (an interface name or index)");
  }
  return true;
}

}  // namespace

// -- SocketAddress ------------------------------------------------------------------------------

SocketAddress::SocketAddress(const sockaddr* addr, socklen_t length) {
  if (length > capacity()) {
    throw ValueError("SocketAddress: an address of " + std::to_string(length) +
                     " bytes does not fit in sockaddr_storage (" + std::to_string(capacity()) +
                     " bytes)");
  }
  if (length > 0 && addr == nullptr) throw ValueError("SocketAddress: null address");
  if (length > 0) std::memcpy(&storage_, addr, length);
  length_ = length;
}

SocketAddress SocketAddress::ip(std::string_view host, std::uint16_t port) {
  // inet_pton is strict: no "127.1", no surrounding spaces, no brackets: only the forms a
  // numeric address is printed in. A host with a '%' can only be a scoped IPv6 address.
  if (host.find('\0') != std::string_view::npos) {
    throw ValueError("SocketAddress::ip: embedded null byte in the host");
  }
  SocketAddress out;
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(port);
  if (host.find('%') == std::string_view::npos &&
      ::inet_pton(AF_INET, std::string(host).c_str(), &v4.sin_addr) == 1) {
    store(out.storage_, v4);
    out.length_ = sizeof v4;
    return out;
  }
  sockaddr_in6 v6{};
  if (parse_ipv6(host, port, v6)) {
    store(out.storage_, v6);
    out.length_ = sizeof v6;
    return out;
  }
  throw ValueError("SocketAddress::ip: " + quoted(host) +
                   " is not a numeric IPv4 or IPv6 address (resolve names with getaddrinfo())");
}

SocketAddress SocketAddress::unix_path(std::string_view path) {
  // As CPython's getsockaddrarg(): a path names a file and is stored with its terminating NUL
  // (the length counts it, as getsockname() reports it); a leading NUL names an abstract
  // socket, whose name is exactly the given bytes; an empty path asks the kernel to pick an
  // abstract name at bind() (autobind).
  const bool abstract = !path.empty() && path.front() == '\0';
  const std::size_t stored = abstract || path.empty() ? path.size() : path.size() + 1;
  if (stored > kSunPathSize) {
    throw ValueError("SocketAddress::unix_path: the path is " + std::to_string(path.size()) +
                     " bytes; AF_UNIX paths hold at most " +
                     std::to_string(abstract ? kSunPathSize : kSunPathSize - 1));
  }
  if (!abstract && path.find('\0') != std::string_view::npos) {
    throw ValueError("SocketAddress::unix_path: embedded null byte in the path");
  }
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());  // the NUL is already there (zeroed)
  SocketAddress out;
  store(out.storage_, un);
  out.length_ = kSunPathOffset + static_cast<socklen_t>(stored);
  return out;
}

int SocketAddress::family() const noexcept {
  return length_ < sizeof(sa_family_t) ? AF_UNSPEC : storage_.ss_family;
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 1] = {};
  if (family() == AF_INET) {
    const auto v4 = load<sockaddr_in>(storage_);
    return ::inet_ntop(AF_INET, &v4.sin_addr, buf, sizeof buf) != nullptr ? buf : "";
  }
  if (family() != AF_INET6) return {};
  const auto v6 = load<sockaddr_in6>(storage_);
  if (::inet_ntop(AF_INET6, &v6.sin6_addr, buf, sizeof buf) == nullptr) return {};
  std::string out = buf;
  // A scoped address prints as glibc's getnameinfo(NI_NUMERICHOST) prints it, so that ip()
  // reads it back: "fe80::1%lo", or "fe80::1%7" when the interface has no name (any more).
  if (v6.sin6_scope_id != 0) {
    char name[IF_NAMESIZE] = {};
    out += '%';
    out += ::if_indextoname(v6.sin6_scope_id, name) != nullptr ? std::string(name)
                                                               : std::to_string(v6.sin6_scope_id);
  }
  return out;
}

std::uint16_t SocketAddress::port() const noexcept {
  if (family() == AF_INET) return ntohs(load<sockaddr_in>(storage_).sin_port);
  if (family() == AF_INET6) return ntohs(load<sockaddr_in6>(storage_).sin6_port);
  return 0;
}

std::string SocketAddress::path() const {
  if (family() != AF_UNIX || length_ <= kSunPathOffset) return {};
  const auto un = load<sockaddr_un>(storage_);
  // A raw address may claim more than sun_path holds (up to sockaddr_storage): read no further.
  const std::size_t n = std::min<std::size_t>(length_ - kSunPathOffset, kSunPathSize);
  // As CPython's makesockaddr(): an abstract name is every byte the length covers; a file path
  // ends at its NUL (the kernel may or may not count it).
  if (un.sun_path[0] == '\0') return {un.sun_path, n};
  return {un.sun_path, ::strnlen(un.sun_path, n)};
}

std::string SocketAddress::to_string() const {
  switch (family()) {
    case AF_INET:
      return host() + ":" + std::to_string(port());
    case AF_INET6:
      return "[" + host() + "]:" + std::to_string(port());
    case AF_UNIX: {
      // An abstract name is shown as ss(8) and netstat show it, "@name", so that the text
      // never carries a NUL byte into a log line.
      std::string p = path();
      if (!p.empty() && p.front() == '\0') p.front() = '@';
      return p;
    }
    case AF_UNSPEC:
      return {};
    default:
      return "<address family " + std::to_string(family()) + ">";
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
  // Only the bytes that mean something are compared: sin_zero, the padding and whatever lies
  // past the length may differ between an address we built and one the kernel returned. The
  // IPv6 scope is part of the address (fe80::1%lo is not fe80::1%eth0); the flow label is not.
  if (a.family() != b.family() || a.length_ != b.length_) return false;
  switch (a.family()) {
    case AF_INET: {
      const auto x = load<sockaddr_in>(a.storage_);
      const auto y = load<sockaddr_in>(b.storage_);
      return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
    }
    case AF_INET6: {
      const auto x = load<sockaddr_in6>(a.storage_);
      const auto y = load<sockaddr_in6>(b.storage_);
      return x.sin6_port == y.sin6_port && x.sin6_scope_id == y.sin6_scope_id &&
             std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
    }
    case AF_UNIX:
      return a.path() == b.path();
    default:
      return std::memcmp(&a.storage_, &b.storage_, a.length_) == 0;
  }
}

// -- Resolution ---------------------------------------------------------------------------------
//
// Errors. Python raises socket.gaierror, an OSError whose errno is the EAI_* code and whose
// strerror is gai_strerror(code); for EAI_SYSTEM it raises the OSError of errno instead. We do
// the same within OSError's contract:
//   * EAI_SYSTEM: raise_os_error(errno) - the errno's own class (PermissionError, ...).
//   * any other EAI_* code: an OSError whose errno_value() is the EAI_* code itself (negative
//     on glibc, so it never collides with an errno: `e.errno_value() == EAI_NONAME` as in
//     Python `e.errno == socket.EAI_NONAME`), and whose what() is
//     "getaddrinfo('host', 'port'): Name or service not known" - gai_strerror's text, not
//     strerror's. It is a private subclass (GaiError below) that only replaces what(): catch it
//     as OSError (or std::system_error). code().message() is generic_category's text for the
//     code ("Unknown error -2"), so read what(), not code().message(). A public
//     asyncio::gaierror class would belong in exceptions.hpp.

namespace {

/// An EAI_* failure: an OSError with errno_value() = the EAI code and what() = `message`.
class GaiError final : public OSError {
 public:
  GaiError(int code, const std::string& message) : OSError(code, message), message_(message) {}
  [[nodiscard]] const char* what() const noexcept override { return message_.what(); }

 private:
  std::runtime_error message_;  // copying it cannot throw (an exception must copy safely)
};

/// Throws what Python raises for the resolver's result `code` (see above); `sys_errno` is the
/// errno the call left, for EAI_SYSTEM.
[[noreturn]] void raise_gai_error(int code, int sys_errno, const std::string& call) {
  if (code == EAI_SYSTEM) raise_os_error(sys_errno, call);
  throw GaiError(code, call + ": " + ::gai_strerror(code));
}

/// What a resolver call on the executor's thread sends back: its result, or its failure as
/// plain values. The exception is made on the loop's thread, by take(): the executor's thread
/// reads errno right after the call (EAI_SYSTEM's cause lives there), and no exception object
/// is shared between threads (ThreadSanitizer cannot see the reference counting of
/// std::exception_ptr inside libstdc++, and reports the destruction of one shared that way).
template <class T>
struct Answer {
  T result{};
  int code = 0;       // the EAI_* code; 0: success
  int sys_errno = 0;  // errno after a failed call
  std::string call;   // "getaddrinfo('host', 'port')", the start of the message

  void fail(int rc, int err, std::string what) {
    code = rc;
    sys_errno = err;
    call = std::move(what);
  }
  T take() && {
    if (code != 0) raise_gai_error(code, sys_errno, call);
    return std::move(result);
  }
};

struct AddrInfoList {
  addrinfo* head = nullptr;
  AddrInfoList() = default;
  AddrInfoList(const AddrInfoList&) = delete;
  AddrInfoList& operator=(const AddrInfoList&) = delete;
  ~AddrInfoList() {
    if (head != nullptr) ::freeaddrinfo(head);
  }
};

/// The blocking call, run on an executor thread. An empty host or port is passed as null, as
/// Python passes None: the caller's AI_PASSIVE then picks the wildcard address, its absence
/// the loopback one.
Answer<std::vector<AddrInfo>> resolve(const std::string& host, const std::string& port,
                                      const AddrInfoHints& hints) {
  addrinfo want{};
  want.ai_family = hints.family;
  want.ai_socktype = hints.type;
  want.ai_protocol = hints.protocol;
  want.ai_flags = hints.flags;
  AddrInfoList list;
  const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                               port.empty() ? nullptr : port.c_str(), &want, &list.head);
  const int err = errno;  // before anything else can change it
  Answer<std::vector<AddrInfo>> out;
  if (rc != 0) {
    out.fail(rc, err, "getaddrinfo(" + quoted(host) + ", " + quoted(port) + ")");
    return out;
  }
  for (const addrinfo* ai = list.head; ai != nullptr; ai = ai->ai_next) {
    out.result.push_back(AddrInfo{
        .family = ai->ai_family,
        .type = ai->ai_socktype,
        .protocol = ai->ai_protocol,
        .canonname = ai->ai_canonname != nullptr ? ai->ai_canonname : "",
        .address = SocketAddress(ai->ai_addr, ai->ai_addrlen),
    });
  }
  return out;
}

/// The blocking reverse call, run on an executor thread.
Answer<NameInfo> name_of(const SocketAddress& address, int flags) {
  char host[NI_MAXHOST] = {};
  char service[NI_MAXSERV] = {};
  const int rc = ::getnameinfo(address.data(), address.size(), host, sizeof host, service,
                               sizeof service, flags);
  const int err = errno;  // before anything else can change it
  Answer<NameInfo> out;
  if (rc != 0) {
    out.fail(rc, err, "getnameinfo(" + quoted(address.to_string()) + ")");
  } else {
    out.result = NameInfo{.host = host, .service = service};
  }
  return out;
}

/// Starts the blocking call on the default executor. Deliberately not a coroutine: g++ 12
/// miscompiles a lambda with init-captures built inside a coroutine's co_await expression (the
/// moved strings kept pointers into the frame: AddressSanitizer's bad-free), so the job is
/// built here, in an ordinary function.
Future<Answer<std::vector<AddrInfo>>> start_resolve(std::string host, std::string port,
                                                    AddrInfoHints hints) {
  return get_running_loop().run_in_executor(
      nullptr, [host = std::move(host), port = std::move(port), hints] {
        return resolve(host, port, hints);
      });
}

Future<Answer<NameInfo>> start_name_of(const SocketAddress& address, int flags) {
  return get_running_loop().run_in_executor(nullptr,
                                            [address, flags] { return name_of(address, flags); });
}

}  // namespace

// Cancellation (both calls): safe, with nothing to undo. Cancelling the task cancels the
// executor's future; the resolver call itself cannot be interrupted, so it finishes on its
// thread and its result is dropped there (Python: the same, run_in_executor's future is
// cancelled and the worker's result ignored). The job owns copies of its arguments, so it
// outlives this frame safely; shutdown_default_executor() at the end of asyncio::run waits
// for it.

Coro<std::vector<AddrInfo>> getaddrinfo(std::string host, std::string port, AddrInfoHints hints) {
  auto answer = co_await start_resolve(std::move(host), std::move(port), hints);
  co_return std::move(answer).take();
}

Coro<NameInfo> getnameinfo(SocketAddress address, int flags) {
  // Python's getnameinfo() takes only an (host, port[, flowinfo, scope_id]) tuple (TypeError
  // otherwise); ours refuses the other families up front rather than hand them to the resolver.
  if (address.family() != AF_INET && address.family() != AF_INET6) {
    throw ValueError("getnameinfo: not an IPv4 or IPv6 address: " + quoted(address.to_string()));
  }
  auto answer = co_await start_name_of(address, flags);
  co_return std::move(answer).take();
}

}  // namespace asyncio
