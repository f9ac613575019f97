// Tests for the address half of asyncio/sockets.hpp: SocketAddress (numeric IPv4/IPv6 with
// scopes, Unix paths including abstract ones, round trips through text, equality, raw sockaddrs
// from the kernel) and getaddrinfo()/getnameinfo() (numeric hosts, localhost from /etc/hosts,
// service names from /etc/services, passive and empty arguments, EAI_* errors as OSError, the
// calls run on the default executor and never block the loop, cancellation).
//
// Python: the address tuples of Modules/socketmodule.c, Lib/asyncio/base_events.py
// getaddrinfo/getnameinfo. No network: only loopback and the local resolver files. The tests
// that cross threads (the gated executor) wait in real time, always bounded.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"

namespace {

using namespace std::chrono_literals;
using asyncio::AddrInfo;
using asyncio::AddrInfoHints;
using asyncio::Coro;
using asyncio::SocketAddress;
using asyncio_test::contains;
using asyncio_test::FdGuard;
using asyncio_test::thrown_what;

constexpr socklen_t kSunPathOffset = offsetof(sockaddr_un, sun_path);

/// A socket's own address, through getsockname() into a raw buffer.
SocketAddress sockname_of(int fd) {
  sockaddr_storage raw{};
  socklen_t len = sizeof raw;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&raw), &len) != 0) {  // NOLINT: sockaddr
    throw std::system_error(errno, std::generic_category(), "getsockname");
  }
  return {reinterpret_cast<const sockaddr*>(&raw), len};  // NOLINT: sockaddr
}

/// A socket of `family` bound to `address`.
FdGuard bound_socket(int family, const SocketAddress& address) {
  FdGuard fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw std::system_error(errno, std::generic_category(), "socket");
  if (::bind(fd.get(), address.data(), address.size()) != 0) {
    throw std::system_error(errno, std::generic_category(), "bind");
  }
  return fd;
}

/// An executor that holds every job until open(), then runs it on a thread of its own. It
/// records how many jobs came, on which thread they ran, and whether the gate had been opened
/// by someone else (the loop) before the job ran, or the wait timed out.
class GateExecutor final : public asyncio::Executor {
 public:
  GateExecutor() = default;
  GateExecutor(const GateExecutor&) = delete;
  GateExecutor& operator=(const GateExecutor&) = delete;
  ~GateExecutor() override {
    open();
    join();
  }

  void submit(std::function<void()> work) override {
    const std::lock_guard lock(mu_);
    if (shut_) throw asyncio::RuntimeError("GateExecutor: shut down");
    ++submitted_;
    threads_.emplace_back([this, work = std::move(work)] {
      {
        std::unique_lock lock(mu_);
        opened_in_time_ = cv_.wait_for(lock, 10s, [this] { return open_; });
        ran_on_ = std::this_thread::get_id();
      }
      work();
      finished_.fetch_add(1);
    });
  }
  void shutdown(bool wait) override {
    {
      const std::lock_guard lock(mu_);
      shut_ = true;
    }
    if (wait) join();
  }

  void open() {
    const std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  [[nodiscard]] int submitted() const {
    const std::lock_guard lock(mu_);
    return submitted_;
  }
  [[nodiscard]] int finished() const { return finished_.load(); }
  [[nodiscard]] bool opened_in_time() const {
    const std::lock_guard lock(mu_);
    return opened_in_time_;
  }
  [[nodiscard]] std::thread::id ran_on() const {
    const std::lock_guard lock(mu_);
    return ran_on_;
  }

 private:
  void join() {
    std::vector<std::thread> threads;
    {
      const std::lock_guard lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  int submitted_ = 0;
  std::atomic<int> finished_{0};
  bool open_ = false;
  bool shut_ = false;
  bool opened_in_time_ = false;
  std::thread::id ran_on_;
};

// -- SocketAddress: IP -------------------------------------------------------------------------

TEST(SocketAddress, DefaultIsEmpty) {
  const SocketAddress a;
  EXPECT_EQ(a.family(), AF_UNSPEC);
  EXPECT_EQ(a.size(), 0U);
  EXPECT_EQ(a.host(), "");
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(a.path(), "");
  EXPECT_EQ(a.to_string(), "");
  EXPECT_EQ(a, SocketAddress());
  EXPECT_NE(a, SocketAddress::ip("0.0.0.0", 0));
}

TEST(SocketAddress, IpV4HasFamilyHostPortAndSize) {
  const SocketAddress a = SocketAddress::ip("127.0.0.1", 8080);
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.size(), sizeof(sockaddr_in));
  EXPECT_EQ(a.host(), "127.0.0.1");
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.path(), "");
  EXPECT_EQ(a.to_string(), "127.0.0.1:8080");
  sockaddr_in raw{};
  std::memcpy(&raw, a.data(), sizeof raw);
  EXPECT_EQ(ntohs(raw.sin_port), 8080);  // stored in network order
  EXPECT_EQ(ntohl(raw.sin_addr.s_addr), INADDR_LOOPBACK);
}

TEST(SocketAddress, IpV6HasFamilyHostPortAndBracketedText) {
  const SocketAddress a = SocketAddress::ip("::1", 443);
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.size(), sizeof(sockaddr_in6));
  EXPECT_EQ(a.host(), "::1");
  EXPECT_EQ(a.port(), 443);
  EXPECT_EQ(a.to_string(), "[::1]:443");
  EXPECT_EQ(SocketAddress::ip("::", 65535).to_string(), "[::]:65535");
}

TEST(SocketAddress, IpV6HostIsPrintedInCanonicalForm) {
  EXPECT_EQ(SocketAddress::ip("0:0:0:0:0:0:0:1", 1).host(), "::1");
  EXPECT_EQ(SocketAddress::ip("2001:DB8:0:0:0:0:0:1", 1).host(), "2001:db8::1");
  EXPECT_EQ(SocketAddress::ip("::ffff:127.0.0.1", 1).host(), "::ffff:127.0.0.1");
  EXPECT_EQ(SocketAddress::ip("::ffff:127.0.0.1", 1).family(), AF_INET6);
}

TEST(SocketAddress, IpRejectsANameAndPointsToGetaddrinfo) {
  const std::string what =
      thrown_what<asyncio::ValueError>([] { (void)SocketAddress::ip("localhost", 80); });
  EXPECT_TRUE(contains(what, "'localhost'")) << what;
  EXPECT_TRUE(contains(what, "getaddrinfo")) << what;
}

TEST(SocketAddress, IpRejectsMalformedNumericAddresses) {
  for (const char* bad : {"", "256.0.0.1", "1.2.3", "127.1", " 127.0.0.1", "127.0.0.1 ", "::1::2",
                          "[::1]", "1:2:3:4:5:6:7:8:9", "127.0.0.1%lo", "fe80::1%"}) {
    EXPECT_FALSE(
        thrown_what<asyncio::ValueError>([bad] { (void)SocketAddress::ip(bad, 1); }).empty())
        << bad;
  }
  const std::string with_nul("127.0.0.1\0junk", 14);
  EXPECT_TRUE(contains(
      thrown_what<asyncio::ValueError>([&] { (void)SocketAddress::ip(with_nul, 1); }), "null"));
}

TEST(SocketAddress, IpV6ScopeByInterfaceNameRoundTrips) {
  const unsigned lo = ::if_nametoindex("lo");
  if (lo == 0) GTEST_SKIP() << "no loopback interface named lo";
  const SocketAddress a = SocketAddress::ip("fe80::1%lo", 7);
  sockaddr_in6 raw{};
  std::memcpy(&raw, a.data(), sizeof raw);
  EXPECT_EQ(raw.sin6_scope_id, lo);
  EXPECT_EQ(a.host(), "fe80::1%lo");
  EXPECT_EQ(a.to_string(), "[fe80::1%lo]:7");
  EXPECT_EQ(SocketAddress::ip(a.host(), a.port()), a);
  // A numeric scope names the same interface; an unscoped address is a different one.
  EXPECT_EQ(SocketAddress::ip("fe80::1%" + std::to_string(lo), 7), a);
  EXPECT_NE(SocketAddress::ip("fe80::1", 7), a);
}

TEST(SocketAddress, IpV6UnknownScopeIsAValueErrorNamingIt) {
  const std::string what =
      thrown_what<asyncio::ValueError>([] { (void)SocketAddress::ip("fe80::1%nosuchif0", 1); });
  EXPECT_TRUE(contains(what, "nosuchif0")) << what;
  EXPECT_TRUE(contains(what, "scope")) << what;
}

TEST(SocketAddress, HostAndPortRoundTripThroughIp) {
  for (const char* host : {"127.0.0.1", "0.0.0.0", "255.255.255.255", "10.1.2.3", "::1",
                           "::", "2001:db8::42", "::ffff:10.0.0.1"}) {
    const SocketAddress a = SocketAddress::ip(host, 12345);
    EXPECT_EQ(a.host(), host);
    EXPECT_EQ(SocketAddress::ip(a.host(), a.port()), a) << host;
  }
}

// -- SocketAddress: Unix ------------------------------------------------------------------------

TEST(SocketAddress, UnixPathCountsItsTerminatingNul) {
  const SocketAddress a = SocketAddress::unix_path("/tmp/x.sock");
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_EQ(a.size(), kSunPathOffset + std::strlen("/tmp/x.sock") + 1);
  EXPECT_EQ(a.path(), "/tmp/x.sock");
  EXPECT_EQ(a.to_string(), "/tmp/x.sock");
  EXPECT_EQ(a.host(), "");
  EXPECT_EQ(a.port(), 0);
}

TEST(SocketAddress, UnixAbstractNameKeepsItsLeadingNulAndExactLength) {
  const std::string name("\0svc", 4);
  const SocketAddress a = SocketAddress::unix_path(name);
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_EQ(a.size(), kSunPathOffset + 4);
  EXPECT_EQ(a.path(), name);
  EXPECT_EQ(a.to_string(), "@svc");  // shown as ss(8) shows it: no NUL in the text
  EXPECT_NE(a, SocketAddress::unix_path("svc"));
}

TEST(SocketAddress, UnixPathTooLongIsAValueError) {
  const std::size_t cap = sizeof(sockaddr_un::sun_path);
  EXPECT_EQ(SocketAddress::unix_path(std::string(cap - 1, 'p')).path(), std::string(cap - 1, 'p'));
  EXPECT_TRUE(contains(thrown_what<asyncio::ValueError>(
                           [&] { (void)SocketAddress::unix_path(std::string(cap, 'p')); }),
                       "at most"));
  // An abstract name has no terminator, so it may fill sun_path, and no more.
  const std::string full = std::string(1, '\0') + std::string(cap - 1, 'a');
  EXPECT_EQ(SocketAddress::unix_path(full).size(), kSunPathOffset + cap);
  EXPECT_FALSE(thrown_what<asyncio::ValueError>([&] {
                 (void)SocketAddress::unix_path(full + "a");
               }).empty());
}

TEST(SocketAddress, UnixPathWithEmbeddedNulIsAValueError) {
  const std::string bad("/tmp/a\0b", 8);
  EXPECT_TRUE(contains(
      thrown_what<asyncio::ValueError>([&] { (void)SocketAddress::unix_path(bad); }), "null"));
}

TEST(SocketAddress, EmptyUnixPathAsksForAutobind) {
  const SocketAddress a = SocketAddress::unix_path("");
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_EQ(a.size(), kSunPathOffset);
  EXPECT_EQ(a.path(), "");
  // bind() then picks an abstract name.
  const FdGuard fd = bound_socket(AF_UNIX, a);
  const SocketAddress got = sockname_of(fd.get());
  ASSERT_FALSE(got.path().empty());
  EXPECT_EQ(got.path().front(), '\0');
}

// -- SocketAddress: equality and raw addresses ----------------------------------------------------

TEST(SocketAddress, EqualityComparesFamilyAddressAndPort) {
  EXPECT_EQ(SocketAddress::ip("127.0.0.1", 80), SocketAddress::ip("127.0.0.1", 80));
  EXPECT_NE(SocketAddress::ip("127.0.0.1", 80), SocketAddress::ip("127.0.0.1", 81));
  EXPECT_NE(SocketAddress::ip("127.0.0.1", 80), SocketAddress::ip("127.0.0.2", 80));
  EXPECT_NE(SocketAddress::ip("::1", 80), SocketAddress::ip("::2", 80));
  EXPECT_NE(SocketAddress::ip("0.0.0.0", 80), SocketAddress::ip("::", 80));
  EXPECT_NE(SocketAddress::ip("::ffff:127.0.0.1", 80), SocketAddress::ip("127.0.0.1", 80));
  EXPECT_EQ(SocketAddress::unix_path("/a"), SocketAddress::unix_path("/a"));
  EXPECT_NE(SocketAddress::unix_path("/a"), SocketAddress::unix_path("/b"));
  EXPECT_NE(SocketAddress::unix_path("/a"), SocketAddress::ip("127.0.0.1", 0));
}

TEST(SocketAddress, EqualityIgnoresBytesThatMeanNothing) {
  sockaddr_in raw{};
  raw.sin_family = AF_INET;
  raw.sin_port = htons(80);
  raw.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::memset(raw.sin_zero, 0xAB, sizeof raw.sin_zero);  // padding the kernel ignores
  const SocketAddress a(reinterpret_cast<const sockaddr*>(&raw), sizeof raw);  // NOLINT
  EXPECT_EQ(a, SocketAddress::ip("127.0.0.1", 80));
  EXPECT_EQ(a.to_string(), "127.0.0.1:80");
}

TEST(SocketAddress, FromGetsocknameOfABoundIpv4Socket) {
  const FdGuard fd = bound_socket(AF_INET, SocketAddress::ip("127.0.0.1", 0));
  const SocketAddress a = sockname_of(fd.get());
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.host(), "127.0.0.1");
  EXPECT_NE(a.port(), 0);  // the kernel picked one
  EXPECT_EQ(a, SocketAddress::ip("127.0.0.1", a.port()));
  EXPECT_EQ(a.to_string(), "127.0.0.1:" + std::to_string(a.port()));

  // The fill-in idiom: capacity(), then set_size().
  SocketAddress b;
  socklen_t len = SocketAddress::capacity();
  ASSERT_EQ(::getsockname(fd.get(), b.data(), &len), 0);
  b.set_size(len);
  EXPECT_EQ(b, a);
}

TEST(SocketAddress, FromGetsocknameOfBoundUnixSockets) {
  char dir[] = "/tmp/asyncio-addr-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/s.sock";
  {
    const FdGuard fd = bound_socket(AF_UNIX, SocketAddress::unix_path(path));
    const SocketAddress a = sockname_of(fd.get());
    EXPECT_EQ(a.path(), path);
    EXPECT_EQ(a, SocketAddress::unix_path(path));
  }
  ::unlink(path.c_str());
  ::rmdir(dir);

  const std::string abstract = std::string(1, '\0') + "asyncio-addr-" + std::to_string(::getpid());
  const FdGuard fd = bound_socket(AF_UNIX, SocketAddress::unix_path(abstract));
  EXPECT_EQ(sockname_of(fd.get()), SocketAddress::unix_path(abstract));
}

TEST(SocketAddress, FromRawLongerThanStorageIsAValueError) {
  const sockaddr_storage raw{};
  const auto* sa = reinterpret_cast<const sockaddr*>(&raw);  // NOLINT: sockaddr
  EXPECT_TRUE(contains(thrown_what<asyncio::ValueError>(
                           [&] { (void)SocketAddress(sa, SocketAddress::capacity() + 1); }),
                       "sockaddr_storage"));
  EXPECT_EQ(SocketAddress(sa, SocketAddress::capacity()).size(), SocketAddress::capacity());
}

// -- getaddrinfo ------------------------------------------------------------------------------

TEST(Getaddrinfo, NumericHostAndPort) {
  const std::vector<AddrInfo> infos = asyncio::run([]() -> Coro<std::vector<AddrInfo>> {
    co_return co_await asyncio::getaddrinfo("127.0.0.1", "80", {.type = SOCK_STREAM});
  }());
  ASSERT_FALSE(infos.empty());
  for (const AddrInfo& ai : infos) {
    EXPECT_EQ(ai.family, AF_INET);
    EXPECT_EQ(ai.type, SOCK_STREAM);
    EXPECT_EQ(ai.protocol, IPPROTO_TCP);
    EXPECT_EQ(ai.canonname, "");  // only with AI_CANONNAME
    EXPECT_EQ(ai.address, SocketAddress::ip("127.0.0.1", 80));
  }
}

TEST(Getaddrinfo, LocalhostResolvesToLoopback) {
  const std::vector<AddrInfo> infos = asyncio::run([]() -> Coro<std::vector<AddrInfo>> {
    co_return co_await asyncio::getaddrinfo("localhost", "0");
  }());
  ASSERT_FALSE(infos.empty());
  for (const AddrInfo& ai : infos) {
    EXPECT_EQ(ai.address.port(), 0);
    const std::string host = ai.address.host();
    EXPECT_TRUE(host.starts_with("127.") || host == "::1") << host;
  }
}

TEST(Getaddrinfo, ServiceNameGivesItsPort) {
  const std::vector<AddrInfo> infos = asyncio::run([]() -> Coro<std::vector<AddrInfo>> {
    co_return co_await asyncio::getaddrinfo("127.0.0.1", "http", {.type = SOCK_STREAM});
  }());
  ASSERT_FALSE(infos.empty());
  EXPECT_EQ(infos.front().address.port(), 80);
  EXPECT_EQ(infos.front().address.to_string(), "127.0.0.1:80");
}

TEST(Getaddrinfo, CanonicalNameOnRequest) {
  const std::vector<AddrInfo> infos = asyncio::run([]() -> Coro<std::vector<AddrInfo>> {
    co_return co_await asyncio::getaddrinfo(
        "127.0.0.1", "80", {.type = SOCK_STREAM, .flags = AI_CANONNAME | AI_NUMERICHOST});
  }());
  ASSERT_FALSE(infos.empty());
  EXPECT_EQ(infos.front().canonname, "127.0.0.1");
}

TEST(Getaddrinfo, EmptyHostIsTheWildcardWhenPassiveAndLoopbackOtherwise) {
  const auto [passive, active] =
      asyncio::run([]() -> Coro<std::pair<std::vector<AddrInfo>, std::vector<AddrInfo>>> {
        auto p = co_await asyncio::getaddrinfo(
            "", "8080", {.family = AF_INET, .type = SOCK_STREAM, .flags = AI_PASSIVE});
        auto a =
            co_await asyncio::getaddrinfo("", "8080", {.family = AF_INET, .type = SOCK_STREAM});
        co_return std::make_pair(std::move(p), std::move(a));
      }());
  ASSERT_FALSE(passive.empty());
  ASSERT_FALSE(active.empty());
  EXPECT_EQ(passive.front().address, SocketAddress::ip("0.0.0.0", 8080));
  EXPECT_EQ(active.front().address, SocketAddress::ip("127.0.0.1", 8080));
}

TEST(Getaddrinfo, EmptyPortIsPortZero) {
  const std::vector<AddrInfo> infos = asyncio::run([]() -> Coro<std::vector<AddrInfo>> {
    co_return co_await asyncio::getaddrinfo("::1", "", {.type = SOCK_DGRAM});
  }());
  ASSERT_FALSE(infos.empty());
  EXPECT_EQ(infos.front().type, SOCK_DGRAM);
  EXPECT_EQ(infos.front().address, SocketAddress::ip("::1", 0));
}

// Python: socket.gaierror: [Errno -2] Name or service not known
TEST(Getaddrinfo, NameWithNumericHostFlagIsAnOSErrorCarryingTheEaiCode) {
  int code = 0;
  std::string what;
  try {
    (void)asyncio::run([]() -> Coro<std::vector<AddrInfo>> {
      co_return co_await asyncio::getaddrinfo("localhost", "80", {.flags = AI_NUMERICHOST});
    }());
  } catch (const asyncio::OSError& e) {
    code = e.errno_value();
    what = e.what();
  }
  EXPECT_EQ(code, EAI_NONAME);
  EXPECT_EQ(what, std::string("getaddrinfo('localhost', '80'): ") + ::gai_strerror(EAI_NONAME));
}

// A copy sliced to OSError (as thrown<E>() makes) keeps the code and the resolver's text; only
// std::system_error's suffix (the category's message for the code) comes back.
TEST(Getaddrinfo, ErrorSlicedToOSErrorKeepsCodeAndResolverText) {
  const auto err = asyncio_test::thrown<asyncio::OSError>([] {
    (void)asyncio::run([]() -> Coro<std::vector<AddrInfo>> {
      co_return co_await asyncio::getaddrinfo("localhost", "80", {.flags = AI_NUMERICHOST});
    }());
  });
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->errno_value(), EAI_NONAME);
  EXPECT_TRUE(contains(err->what(), ::gai_strerror(EAI_NONAME))) << err->what();
  EXPECT_TRUE(contains(err->what(), "'localhost'")) << err->what();
}

TEST(Getaddrinfo, ErrorsAreCaughtAsSystemErrorInsideTheCoroutine) {
  const std::string what = asyncio::run([]() -> Coro<std::string> {
    try {
      (void)co_await asyncio::getaddrinfo("127.0.0.1", "no-such-service-xyz",
                                          {.type = SOCK_STREAM});
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), EAI_SERVICE);
      co_return e.what();
    }
    co_return "";
  }());
  EXPECT_TRUE(contains(what, ::gai_strerror(EAI_SERVICE))) << what;
  EXPECT_TRUE(contains(what, "no-such-service-xyz")) << what;
}

TEST(Getaddrinfo, NoHostAndNoPortIsAnError) {
  const auto err = asyncio_test::thrown<asyncio::OSError>([] {
    (void)asyncio::run(
        []() -> Coro<std::vector<AddrInfo>> { co_return co_await asyncio::getaddrinfo("", ""); }());
  });
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->errno_value(), EAI_NONAME);
}

TEST(Getaddrinfo, RunsOnTheDefaultExecutorWhileTheLoopKeepsRunning) {
  // The job waits at the gate until a task of the loop opens it: if getaddrinfo() blocked the
  // loop (or ran the call inline), that task could not run first.
  auto gate = std::make_shared<GateExecutor>();
  const auto loop_thread = std::this_thread::get_id();
  const std::vector<AddrInfo> infos =
      asyncio::run([](std::shared_ptr<GateExecutor> gate) -> Coro<std::vector<AddrInfo>> {
        asyncio::get_running_loop().set_default_executor(gate);
        auto lookup = asyncio::create_task(asyncio::getaddrinfo("127.0.0.1", "80"));
        auto opener = asyncio::create_task([](std::shared_ptr<GateExecutor> g) -> Coro<int> {
          co_await asyncio::sleep(0.01);
          g->open();
          co_return g->submitted();
        }(gate));
        EXPECT_EQ(co_await opener, 1);
        EXPECT_FALSE(lookup.done());  // the job could not have finished before the gate opened
        co_return co_await lookup;
      }(gate));
  ASSERT_FALSE(infos.empty());
  EXPECT_EQ(infos.front().address.to_string(), "127.0.0.1:80");
  EXPECT_EQ(gate->submitted(), 1);
  EXPECT_EQ(gate->finished(), 1);
  EXPECT_TRUE(gate->opened_in_time());
  EXPECT_NE(gate->ran_on(), loop_thread);
}

TEST(Getaddrinfo, OtherTasksRunMeanwhileOnTheDefaultPool) {
  const auto [ticks, n] = asyncio::run([]() -> Coro<std::pair<int, std::size_t>> {
    auto ticker = asyncio::create_task([]() -> Coro<int> {
      int ticks = 0;
      for (; ticks < 3; ++ticks) co_await asyncio::sleep(0);
      co_return ticks;
    }());
    auto infos = co_await asyncio::getaddrinfo("localhost", "80", {.type = SOCK_STREAM});
    co_return std::make_pair(co_await ticker, infos.size());
  }());
  EXPECT_EQ(ticks, 3);
  EXPECT_GE(n, 1U);
}

TEST(Getaddrinfo, CancelledWhileResolvingThenLoopAndExecutorShutDownCleanly) {
  auto gate = std::make_shared<GateExecutor>();
  const auto [cancelled, again] =
      asyncio::run([](std::shared_ptr<GateExecutor> gate) -> Coro<std::pair<bool, std::string>> {
        asyncio::get_running_loop().set_default_executor(gate);
        auto lookup = asyncio::create_task(asyncio::getaddrinfo("127.0.0.1", "80"));
        co_await asyncio::sleep(0.01);  // submitted, held at the gate
        EXPECT_EQ(gate->submitted(), 1);
        lookup.cancel("stop");
        const bool was_cancelled = co_await asyncio_test::ends_cancelled(lookup);
        gate->open();  // the abandoned call finishes on its thread; its result is dropped
        // The loop and its executor still serve a new call.
        auto infos = co_await asyncio::getaddrinfo("127.0.0.1", "81");
        co_return std::make_pair(was_cancelled, infos.front().address.to_string());
      }(gate));
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(again, "127.0.0.1:81");
  // asyncio::run's shutdown_default_executor() waited for both jobs.
  EXPECT_EQ(gate->submitted(), 2);
  EXPECT_EQ(gate->finished(), 2);
}

TEST(Getaddrinfo, ConcurrentCallsEachGetTheirOwnAnswer) {
  const std::vector<std::string> got = asyncio::run([]() -> Coro<std::vector<std::string>> {
    std::vector<asyncio::Task<std::vector<AddrInfo>>> lookups;
    for (int port = 1; port <= 5; ++port) {
      lookups.push_back(asyncio::create_task(
          asyncio::getaddrinfo("127.0.0.1", std::to_string(port), {.type = SOCK_STREAM})));
    }
    std::vector<std::string> out;
    for (auto& t : lookups) out.push_back((co_await t).front().address.to_string());
    co_return out;
  }());
  EXPECT_EQ(got, (std::vector<std::string>{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3",
                                           "127.0.0.1:4", "127.0.0.1:5"}));
}

// -- getnameinfo ------------------------------------------------------------------------------

TEST(Getnameinfo, NumericHostAndService) {
  const asyncio::NameInfo v4 = asyncio::run([]() -> Coro<asyncio::NameInfo> {
    co_return co_await asyncio::getnameinfo(SocketAddress::ip("127.0.0.1", 80),
                                            NI_NUMERICHOST | NI_NUMERICSERV);
  }());
  EXPECT_EQ(v4.host, "127.0.0.1");
  EXPECT_EQ(v4.service, "80");
  const asyncio::NameInfo v6 = asyncio::run([]() -> Coro<asyncio::NameInfo> {
    co_return co_await asyncio::getnameinfo(SocketAddress::ip("::1", 8080),
                                            NI_NUMERICHOST | NI_NUMERICSERV);
  }());
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.service, "8080");
}

TEST(Getnameinfo, NamesFromTheLocalFiles) {
  const asyncio::NameInfo ni = asyncio::run([]() -> Coro<asyncio::NameInfo> {
    co_return co_await asyncio::getnameinfo(SocketAddress::ip("127.0.0.1", 80));
  }());
  EXPECT_EQ(ni.host, "localhost");  // /etc/hosts
  EXPECT_EQ(ni.service, "http");    // /etc/services
}

TEST(Getnameinfo, UnixAddressIsAValueError) {
  const auto err = asyncio_test::thrown<asyncio::ValueError>([] {
    (void)asyncio::run([]() -> Coro<asyncio::NameInfo> {
      co_return co_await asyncio::getnameinfo(SocketAddress::unix_path("/tmp/x"));
    }());
  });
  ASSERT_TRUE(err.has_value());
  EXPECT_TRUE(contains(err->what(), "/tmp/x")) << err->what();
}

TEST(Getnameinfo, ResolverErrorIsAnOSErrorCarryingTheEaiCode) {
  // An AF_INET address too short to be a sockaddr_in: the resolver answers EAI_FAMILY.
  sockaddr_in raw{};
  raw.sin_family = AF_INET;
  const SocketAddress truncated(reinterpret_cast<const sockaddr*>(&raw), 4);  // NOLINT
  ASSERT_EQ(truncated.family(), AF_INET);
  const auto err = asyncio_test::thrown<asyncio::OSError>([&] {
    (void)asyncio::run([](SocketAddress a) -> Coro<asyncio::NameInfo> {
      co_return co_await asyncio::getnameinfo(a, NI_NUMERICHOST);
    }(truncated));
  });
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->errno_value(), EAI_FAMILY);
  EXPECT_TRUE(contains(err->what(), ::gai_strerror(EAI_FAMILY))) << err->what();
  EXPECT_TRUE(contains(err->what(), "getnameinfo")) << err->what();
}

}  // namespace
