// io_pingpong: a 64-byte ping-pong, and the system calls it costs, on each I/O engine and
// against plain C (bench/RESULTS.md, "I/O: ping-pong and system calls").
//
//   io_pingpong [N] [REPS] [--cpu0] [--only TEXT]
//
// The measured side sends 64 bytes and receives exactly 64 back, N times (default 200000).
// Unless said "same loop", the other end is a plain blocking C loop on another thread, so the
// measured side really waits on the kernel each time. Configurations:
//
//   asyncio-cpp, epoll / io_uring   a task: co_await sock_sendall(fd, msg); then sock_recv(fd, 64)
//                                   until 64 bytes; over socketpair(AF_UNIX) and TCP loopback
//   C blocking                      send(); recv() until 64 bytes
//   C epoll (level-triggered)       non-blocking send(); epoll_wait(); recv() until 64 bytes
//   asyncio-cpp, same loop          both ends are tasks on one loop (socketpair): the echo's
//                                   data is often there already; counts cover both ends
//
// Each configuration runs REPS times (default 3), interleaved (rep 1 of every configuration,
// then rep 2...), after a warm-up of N/20 round trips; the table shows the median rep, and the
// median CPU time (user + system) of the measured thread, which other load on a shared machine
// disturbs far less than wall time. Syscalls
// per round trip are those of the measured thread: asyncio-cpp's from the syscall seam's
// per-thread counters (src/sys/sys.hpp), the C loops' counted by hand. --cpu0 pins the whole
// process (both threads) to CPU 0; --only runs the configurations whose name contains TEXT and
// prints whole-run counts of both threads (to compare with `strace -c -f`). Every echoed byte
// is checked.
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <asyncio.hpp>
#include <asyncio/sockets.hpp>

#include "sys/sys.hpp"

namespace {

using Clock = std::chrono::steady_clock;

/// CPU time (user + system) the calling thread has used, in seconds: unlike wall time, it does
/// not count the time other processes on this shared machine take.
double thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
using asyncio::sys::Call;
constexpr std::size_t kMsg = 64;
constexpr int kCalls = static_cast<int>(Call::count_);

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// ---- Counting ---------------------------------------------------------------------------------

/// Calls per kind (indexed by sys::Call), for one thread over some stretch of time.
struct Counts {
  std::array<std::uint64_t, kCalls> n{};

  std::uint64_t& operator[](Call c) { return n[static_cast<std::size_t>(c)]; }
  [[nodiscard]] std::uint64_t total() const {
    std::uint64_t t = 0;
    for (const std::uint64_t x : n) t += x;
    return t;
  }
  friend Counts operator-(Counts a, const Counts& b) {
    for (std::size_t i = 0; i < a.n.size(); ++i) a.n[i] -= b.n[i];
    return a;
  }
  /// "recv 1.00 · send 1.00" per `per`, the calls made only.
  [[nodiscard]] std::string per(double per) const {
    std::string out;
    for (int i = 0; i < kCalls; ++i) {
      if (n[static_cast<std::size_t>(i)] == 0) continue;
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%s %.2f", out.empty() ? "" : " · ",
                    asyncio::sys::call_name(static_cast<Call>(i)),
                    static_cast<double>(n[static_cast<std::size_t>(i)]) / per);
      out += buf;
    }
    return out;
  }
  /// "recv=123 send=123", the calls made only.
  [[nodiscard]] std::string raw() const {
    std::string out;
    for (int i = 0; i < kCalls; ++i) {
      if (n[static_cast<std::size_t>(i)] == 0) continue;
      out += (out.empty() ? "" : " ") + std::string(asyncio::sys::call_name(static_cast<Call>(i))) +
             "=" + std::to_string(n[static_cast<std::size_t>(i)]);
    }
    return out;
  }
};

/// The seam's counters of the calling thread.
Counts seam() {
  Counts c;
  for (int i = 0; i < kCalls; ++i) {
    c.n[static_cast<std::size_t>(i)] = asyncio::sys::call_count(static_cast<Call>(i));
  }
  return c;
}

/// What one run of one configuration measured.
struct Sample {
  double seconds = 0;
  double cpu_seconds = 0;  // the measured thread's CPU time (user + system), timed round trips
  Counts measured;         // the measured thread, timed round trips only
  Counts whole;            // the measured thread, warm-up and set-up included
  Counts echo;             // the echo thread, whole run
};

// ---- The message ------------------------------------------------------------------------------

/// Round trip `i`'s message: 64 bytes that differ from one round trip to the next.
void fill(std::string& msg, long i) {
  for (std::size_t k = 0; k < kMsg; ++k) {
    msg[k] = static_cast<char>('A' + static_cast<char>((static_cast<unsigned long>(i) + k) % 26));
  }
}

void check_echo(const std::string& sent, const char* got, long i) {
  if (std::memcmp(sent.data(), got, kMsg) != 0) {
    throw std::runtime_error("round trip " + std::to_string(i) + ": wrong bytes came back");
  }
}

// ---- Socket pairs and the echo thread ---------------------------------------------------------

enum class Link { unix_pair, tcp };

void no_delay(int fd) {
  const int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail("TCP_NODELAY");
}

/// Two connected blocking sockets: {measured end, echo end}.
std::array<int, 2> connected_pair(Link link) {
  std::array<int, 2> fds{-1, -1};
  if (link == Link::unix_pair) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds.data()) != 0) fail("socketpair");
    return fds;
  }
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||  // NOLINT
      ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {  // NOLINT
    fail("listen on 127.0.0.1");
  }
  fds[0] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fds[0] < 0 || ::connect(fds[0], reinterpret_cast<sockaddr*>(&addr), len) != 0) {  // NOLINT
    fail("connect");
  }
  fds[1] = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (fds[1] < 0) fail("accept");
  ::close(listener);
  no_delay(fds[0]);
  no_delay(fds[1]);
  return fds;
}

/// The other end: a blocking C loop that writes back every byte it reads, until end of file.
void echo_loop(int fd, Counts* counts) {
  char buf[4096];
  for (;;) {
    const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    ++(*counts)[Call::recv];
    if (r <= 0) return;
    for (ssize_t off = 0; off < r;) {
      const ssize_t w = ::send(fd, buf + off, static_cast<std::size_t>(r - off), MSG_NOSIGNAL);
      ++(*counts)[Call::send];
      if (w <= 0) return;
      off += w;
    }
  }
}

/// Runs `measure(fd)` against an echo thread over a fresh pair; fills the echo's counts.
Sample with_echo_thread(Link link, const std::function<Sample(int)>& measure) {
  const std::array<int, 2> fds = connected_pair(link);
  Counts echo;
  std::thread peer(echo_loop, fds[1], &echo);
  Sample s;
  std::exception_ptr err;
  try {
    s = measure(fds[0]);
  } catch (...) {
    err = std::current_exception();
  }
  ::shutdown(fds[0], SHUT_WR);  // the echo sees end of file
  peer.join();
  ::close(fds[0]);
  ::close(fds[1]);
  if (err) std::rethrow_exception(err);
  s.echo = echo;
  return s;
}

// ---- asyncio-cpp ------------------------------------------------------------------------------

/// `count` round trips, numbered from `first`.
asyncio::Coro<void> ping(int fd, long first, long count) {
  std::string msg(kMsg, '\0');
  std::string got;
  got.reserve(kMsg);
  for (long i = first; i < first + count; ++i) {
    fill(msg, i);
    co_await asyncio::sock_sendall(fd, msg);
    got.clear();
    while (got.size() < kMsg) {
      const std::string part = co_await asyncio::sock_recv(fd, kMsg - got.size());
      if (part.empty()) throw std::runtime_error("the echo closed the connection");
      got += part;
    }
    check_echo(msg, got.data(), i);
  }
}

/// Warm-up, then `n` timed round trips; the seam's counts of this thread over the timed ones.
asyncio::Coro<Sample> timed_ping(int fd, long n) {
  co_await ping(fd, 0, std::max(1L, n / 20));
  Sample s;
  const Counts before = seam();
  const double cpu0 = thread_cpu();
  const auto t0 = Clock::now();
  co_await ping(fd, 0, n);
  s.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  s.cpu_seconds = thread_cpu() - cpu0;
  s.measured = seam() - before;
  co_return s;
}

/// The echo as a task on the same loop.
asyncio::Coro<void> echo_task(int fd) {
  for (;;) {
    const std::string data = co_await asyncio::sock_recv(fd, 4096);
    if (data.empty()) co_return;
    co_await asyncio::sock_sendall(fd, data);
  }
}

asyncio::Coro<Sample> same_loop(int fd, int peer, long n) {
  asyncio::Task<void> echo = asyncio::create_task(echo_task(peer));
  const Sample s = co_await timed_ping(fd, n);
  ::shutdown(fd, SHUT_WR);
  co_await echo;
  co_return s;
}

Sample run_on(asyncio::Backend backend, asyncio::Coro<Sample> main) {
  const Counts before = seam();
  Sample s = asyncio::run(std::move(main), asyncio::RunOptions{.backend = backend});
  s.whole = seam() - before;
  return s;
}

Sample asyncio_echo_thread(asyncio::Backend backend, Link link, long n) {
  return with_echo_thread(link,
                          [backend, n](int fd) { return run_on(backend, timed_ping(fd, n)); });
}

Sample asyncio_same_loop(asyncio::Backend backend, long n) {
  const std::array<int, 2> fds = connected_pair(Link::unix_pair);
  Sample s;
  std::exception_ptr err;
  try {
    s = run_on(backend, same_loop(fds[0], fds[1], n));
  } catch (...) {
    err = std::current_exception();
  }
  ::close(fds[0]);
  ::close(fds[1]);
  if (err) std::rethrow_exception(err);
  return s;
}

// ---- Plain C ----------------------------------------------------------------------------------

/// One of the C loops: `wait(fd, counts)` before each recv (nothing for blocking sockets).
template <class Wait>
void c_ping(int fd, long first, long count, Counts& c, Wait wait) {
  std::string msg(kMsg, '\0');
  char got[kMsg];
  for (long i = first; i < first + count; ++i) {
    fill(msg, i);
    for (std::size_t off = 0; off < kMsg;) {
      const ssize_t w = ::send(fd, msg.data() + off, kMsg - off, MSG_NOSIGNAL);
      ++c[Call::send];
      if (w < 0) fail("send");  // 64 bytes into an empty socket buffer never wait
      off += static_cast<std::size_t>(w);
    }
    for (std::size_t off = 0; off < kMsg;) {
      wait(c);
      const ssize_t r = ::recv(fd, got + off, kMsg - off, 0);
      ++c[Call::recv];
      if (r == 0) throw std::runtime_error("the echo closed the connection");
      if (r < 0 && errno == EAGAIN) continue;
      if (r < 0) fail("recv");
      off += static_cast<std::size_t>(r);
    }
    check_echo(msg, got, i);
  }
}

template <class Wait>
Sample c_timed(int fd, long n, Wait wait) {
  Sample s;
  c_ping(fd, 0, std::max(1L, n / 20), s.whole, wait);
  const Counts before = s.whole;
  const double cpu0 = thread_cpu();
  const auto t0 = Clock::now();
  c_ping(fd, 0, n, s.whole, wait);
  s.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  s.cpu_seconds = thread_cpu() - cpu0;
  s.measured = s.whole - before;
  return s;
}

Sample c_blocking(Link link, long n) {
  return with_echo_thread(link, [n](int fd) { return c_timed(fd, n, [](Counts&) {}); });
}

Sample c_epoll(Link link, long n) {
  return with_echo_thread(link, [n](int fd) {
    if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) fail("O_NONBLOCK");
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;  // level-triggered, registered once
    ev.data.fd = fd;
    if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) fail("epoll");
    Sample s = c_timed(fd, n, [ep](Counts& c) {
      epoll_event out{};
      while (::epoll_wait(ep, &out, 1, -1) < 0) {
        ++c[Call::epoll_wait];
        if (errno != EINTR) fail("epoll_wait");
      }
      ++c[Call::epoll_wait];
    });
    ::close(ep);
    return s;
  });
}

// ---- The table --------------------------------------------------------------------------------

struct Config {
  std::string name;
  std::function<Sample(long)> run;
  std::vector<Sample> samples;
};

std::vector<Config> configurations() {
  using asyncio::Backend;
  std::vector<Config> out;
  const auto add = [&out](std::string name, std::function<Sample(long)> run) {
    out.push_back(Config{std::move(name), std::move(run), {}});
  };
  for (const Backend b : {Backend::epoll, Backend::io_uring}) {
    const std::string engine = b == Backend::epoll ? "epoll" : "io_uring";
    add("asyncio-cpp " + engine + ", socketpair",
        [b](long n) { return asyncio_echo_thread(b, Link::unix_pair, n); });
    add("asyncio-cpp " + engine + ", TCP",
        [b](long n) { return asyncio_echo_thread(b, Link::tcp, n); });
  }
  add("C blocking send/recv, socketpair", [](long n) { return c_blocking(Link::unix_pair, n); });
  add("C blocking send/recv, TCP", [](long n) { return c_blocking(Link::tcp, n); });
  add("C epoll (LT), socketpair", [](long n) { return c_epoll(Link::unix_pair, n); });
  add("C epoll (LT), TCP", [](long n) { return c_epoll(Link::tcp, n); });
  add("asyncio-cpp epoll, same loop, socketpair",
      [](long n) { return asyncio_same_loop(Backend::epoll, n); });
  add("asyncio-cpp io_uring, same loop, socketpair",
      [](long n) { return asyncio_same_loop(Backend::io_uring, n); });
  return out;
}

const Sample& median(std::vector<Sample>& samples) {
  std::sort(samples.begin(), samples.end(),
            [](const Sample& a, const Sample& b) { return a.seconds < b.seconds; });
  return samples[samples.size() / 2];
}

/// The median measured-thread CPU time of a configuration's samples.
double median_cpu(const std::vector<Sample>& samples) {
  std::vector<double> cpu;
  for (const Sample& s : samples) cpu.push_back(s.cpu_seconds);
  std::sort(cpu.begin(), cpu.end());
  return cpu[cpu.size() / 2];
}

void print_table(std::vector<Config>& configs, long n) {
  std::printf(
      "| configuration | round trips/s | ns per round trip | measured thread CPU ns per round trip "
      "| syscalls per round trip | of which |\n");
  std::printf("|---|---:|---:|---:|---:|---|\n");
  for (Config& c : configs) {
    if (c.samples.empty()) continue;
    const double cpu = median_cpu(c.samples);
    const Sample& s = median(c.samples);
    const double per = static_cast<double>(n);
    std::printf("| %s | %.0f | %.0f | %.0f | %.2f | %s |\n", c.name.c_str(), per / s.seconds,
                s.seconds * 1e9 / per, cpu * 1e9 / per,
                static_cast<double>(s.measured.total()) / per, s.measured.per(per).c_str());
  }
}

void print_whole_counts(std::vector<Config>& configs) {
  std::printf("\nWhole-run counts (warm-up and set-up included; compare with strace -c -f):\n");
  for (Config& c : configs) {
    for (const Sample& s : c.samples) {
      std::printf("- %s: measured thread %s; echo thread %s\n", c.name.c_str(),
                  s.whole.raw().c_str(), s.echo.total() == 0 ? "(none)" : s.echo.raw().c_str());
    }
  }
}

void pin_to_cpu0() {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) fail("sched_setaffinity");
}

}  // namespace

int main(int argc, char** argv) {
  long n = 200000;
  long reps = 3;
  bool cpu0 = false;
  std::string only;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--cpu0") {
      cpu0 = true;
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (positional++ == 0) {
      n = std::strtol(argv[i], nullptr, 10);
    } else {
      reps = std::strtol(argv[i], nullptr, 10);
    }
  }
  if (n <= 0 || reps <= 0) {
    std::fprintf(stderr, "usage: io_pingpong [N] [REPS] [--cpu0] [--only TEXT]\n");
    return 2;
  }
  try {
    if (cpu0) pin_to_cpu0();
    std::vector<Config> configs = configurations();
    if (!only.empty()) {
      std::erase_if(configs,
                    [&only](const Config& c) { return c.name.find(only) == std::string::npos; });
    }
    std::printf("64-byte ping-pong, N = %ld round trips, median of %ld interleaved reps%s\n\n", n,
                reps, cpu0 ? ", all threads on CPU 0" : ", threads unpinned");
    for (long r = 0; r < reps; ++r) {
      for (Config& c : configs) c.samples.push_back(c.run(n));
    }
    print_table(configs, n);
    if (!only.empty()) print_whole_counts(configs);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "io_pingpong: %s\n", e.what());
    return 1;
  }
  return 0;
}
