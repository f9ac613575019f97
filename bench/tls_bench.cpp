// tls_bench: a TLS echo server's CPU per round trip, asyncio-cpp's streams over TLS (each engine)
// against what OpenSSL itself costs: a plain C server that runs SSL_read/SSL_write straight on
// its sockets with epoll (issue 14's anchor), and Python asyncio + ssl when python3 is there.
//
//   tls_bench [--size BYTES] [--connections C] [--seconds S] [--runs R]
//             [--servers asyncio-epoll,asyncio-io_uring,openssl,python]
//
// TLS 1.3 with TLS_AES_128_GCM_SHA256 and a P-256 certificate made with the `openssl` command in
// a temporary directory. C client threads (plain blocking OpenSSL sockets, the same for every
// server) each keep one message of BYTES in flight: send it, read the echo whole, again, for S
// seconds after a warm-up. The in-process servers run on their own thread and report its CPU
// time (CLOCK_THREAD_CPUTIME_ID: user + system); Python's is read from /proc/PID/stat. Printed
// per server: the median over R runs of round trips per second and of server CPU µs per round
// trip (and of it, in user space), and the total's ratio to the plain OpenSSL server's.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asyncio.hpp>

namespace {

/// The calling thread's CPU time: user and system seconds.
struct Cpu {
  double user = 0;
  double sys = 0;
};

Cpu thread_cpu() {
  rusage u{};
  ::getrusage(RUSAGE_THREAD, &u);
  auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return {secs(u.ru_utime), secs(u.ru_stime)};
}

double wall_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Options {
  std::size_t size = 64;
  int connections = 4;
  double seconds = 2.0;
  int runs = 3;
  std::string servers = "asyncio-epoll,asyncio-io_uring,openssl,python";
};

struct Certs {
  std::string dir, cert, key;
  Certs() {
    char tmpl[] = "/tmp/tls-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::exit(1);
    dir = tmpl;
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
        "-nodes -days 2 -subj /CN=localhost -keyout " +
        key + " -out " + cert + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "tls_bench: the openssl command failed\n");
      std::exit(1);
    }
  }
  Certs(const Certs&) = delete;
  Certs& operator=(const Certs&) = delete;
  ~Certs() { (void)std::system(("rm -rf " + dir).c_str()); }
};

// ---- The servers --------------------------------------------------------------------------------

/// What a server thread reports: its port once listening, its CPU time on request.
struct ServerControl {
  std::atomic<int> port{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> sample{false};  // asks for cpu_at_sample
  std::atomic<double> user_at_sample{0};
  std::atomic<double> sys_at_sample{0};
  std::atomic<bool> sampled{false};
};

/// asyncio-cpp: a streams echo server over TLS, the way a user writes it.
void asyncio_server(asyncio::Backend backend, const Certs& certs, ServerControl& ctl) {
  asyncio::ssl::SSLContext ctx(asyncio::ssl::PROTOCOL_TLS_SERVER);
  ctx.load_cert_chain(certs.cert, certs.key);
  asyncio::run(
      [](const asyncio::ssl::SSLContext& ctx, ServerControl& ctl) -> asyncio::Coro<void> {
        asyncio::Server server = co_await asyncio::start_server(
            [](asyncio::StreamReader r, asyncio::StreamWriter w) -> asyncio::Coro<void> {
              try {
                for (;;) {
                  std::string data = co_await r.read(65536);
                  if (data.empty()) break;
                  w.write(data);
                  co_await w.drain();
                }
              } catch (const std::exception&) {
              }
              w.close();
            },
            "127.0.0.1", 0, asyncio::ServerOptions{.ssl = ctx});
        ctl.port = server.port();
        while (!ctl.stop) {
          if (ctl.sample.exchange(false)) {
            const Cpu c = thread_cpu();
            ctl.user_at_sample = c.user;
            ctl.sys_at_sample = c.sys;
            ctl.sampled = true;
          }
          co_await asyncio::sleep(0.005);
        }
        server.close();
        server.abort_clients();
        co_await server.wait_closed();
      }(ctx, ctl),
      asyncio::RunOptions{.backend = backend});
}

/// What OpenSSL itself costs: SSL_read/SSL_write straight on non-blocking sockets, epoll.
void openssl_server(const Certs& certs, ServerControl& ctl) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate_chain_file(ctx, certs.cert.c_str());
  SSL_CTX_use_PrivateKey_file(ctx, certs.key.c_str(), SSL_FILETYPE_PEM);
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);  // NOLINT
  (void)::listen(lfd, 128);
  socklen_t len = sizeof sa;
  (void)::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);  // NOLINT
  const int ep = ::epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  (void)::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  ctl.port = ntohs(sa.sin_port);
  std::vector<char> buf(65536);
  std::vector<SSL*> all;
  epoll_event events[64];
  while (!ctl.stop) {
    if (ctl.sample.exchange(false)) {
      const Cpu c = thread_cpu();
      ctl.user_at_sample = c.user;
      ctl.sys_at_sample = c.sys;
      ctl.sampled = true;
    }
    const int n = ::epoll_wait(ep, events, 64, 5);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        for (;;) {
          const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
          if (fd < 0) break;
          const int one = 1;
          (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          SSL* ssl = SSL_new(ctx);
          SSL_set_fd(ssl, fd);
          SSL_set_accept_state(ssl);
          all.push_back(ssl);
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.ptr = ssl;
          (void)::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      SSL* ssl = static_cast<SSL*>(events[i].data.ptr);
      for (;;) {
        const int r = SSL_read(ssl, buf.data(), static_cast<int>(buf.size()));
        if (r <= 0) {
          const int e = SSL_get_error(ssl, r);
          if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            (void)::epoll_ctl(ep, EPOLL_CTL_DEL, SSL_get_fd(ssl), nullptr);
          }
          break;
        }
        int off = 0;
        while (off < r) {
          const int w = SSL_write(ssl, buf.data() + off, r - off);
          if (w > 0) {
            off += w;
          } else if (SSL_get_error(ssl, w) == SSL_ERROR_WANT_WRITE) {
            pollfd p{SSL_get_fd(ssl), POLLOUT, 0};
            (void)::poll(&p, 1, 100);
          } else {
            break;
          }
        }
        // Level-triggered: read again only while OpenSSL holds bytes (a record, or the rest of
        // one); otherwise epoll says when the socket has more. Reading on to WANT_READ would
        // cost a failed read() and OpenSSL's error path per message, which is not TLS's cost.
        if (SSL_has_pending(ssl) == 0) break;
      }
    }
  }
  for (SSL* ssl : all) {
    ::close(SSL_get_fd(ssl));
    SSL_free(ssl);
  }
  ::close(ep);
  ::close(lfd);
  SSL_CTX_free(ctx);
}

const char* const kPythonServer = R"(
import asyncio, ssl, sys
async def echo(r, w):
    try:
        while True:
            d = await r.read(65536)
            if not d:
                break
            w.write(d)
            await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    s = await asyncio.start_server(echo, '127.0.0.1', 0, ssl=ctx)
    print(s.sockets[0].getsockname()[1], flush=True)
    await s.serve_forever()
asyncio.run(main())
)";

Cpu process_cpu(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t close = s.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  long utime = 0;
  long stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  const auto tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return {static_cast<double>(utime) / tick, static_cast<double>(stime) / tick};
}

// ---- The clients -------------------------------------------------------------------------------

/// One connection's ping-pong until `stop`; counts round trips while `counting`.
void client(int port, std::size_t size, const std::atomic<bool>& stop,
            const std::atomic<bool>& counting, std::atomic<long>& round_trips) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  (void)SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {  // NOLINT
    std::perror("connect");
    std::exit(1);
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) {
    ERR_print_errors_fp(stderr);
    std::exit(1);
  }
  std::string msg(size, 'x');
  std::vector<char> buf(65536);
  while (!stop) {
    if (SSL_write(ssl, msg.data(), static_cast<int>(msg.size())) <= 0) break;
    std::size_t got = 0;
    while (got < size) {
      const int r = SSL_read(ssl, buf.data(), static_cast<int>(buf.size()));
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    if (got < size) break;
    if (counting) round_trips.fetch_add(1, std::memory_order_relaxed);
  }
  (void)SSL_shutdown(ssl);
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
}

struct Result {
  double per_second = 0;
  double cpu_us = 0;   // server CPU per round trip
  double user_us = 0;  // of which in user space
};

/// One run against the server on `port`; `cpu()` reads the server's CPU seconds.
Result drive(int port, const Options& o, const std::function<Cpu()>& cpu) {
  std::atomic<bool> stop{false};
  std::atomic<bool> counting{false};
  std::atomic<long> round_trips{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < o.connections; ++i) {
    threads.emplace_back(client, port, o.size, std::cref(stop), std::cref(counting),
                         std::ref(round_trips));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // handshakes, warm-up
  const Cpu cpu0 = cpu();
  const double t0 = wall_seconds();
  counting = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  counting = false;
  const double t1 = wall_seconds();
  const Cpu cpu1 = cpu();
  stop = true;
  for (std::thread& t : threads) t.join();
  const auto n = static_cast<double>(round_trips.load());
  if (n == 0) return {};
  const double user = cpu1.user - cpu0.user;
  const double total = user + cpu1.sys - cpu0.sys;
  return {n / (t1 - t0), total * 1e6 / n, user * 1e6 / n};
}

Cpu sample(ServerControl& ctl) {
  ctl.sampled = false;
  ctl.sample = true;
  while (!ctl.sampled) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return {ctl.user_at_sample, ctl.sys_at_sample};
}

Result run_thread_server(const std::function<void(ServerControl&)>& body, const Options& o) {
  ServerControl ctl;
  std::thread server([&] { body(ctl); });
  while (ctl.port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Result r = drive(ctl.port, o, [&] { return sample(ctl); });
  ctl.stop = true;
  server.join();
  return r;
}

Result run_python_server(const Certs& certs, const Options& o) {
  int out[2];
  if (::pipe(out) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::execlp("python3", "python3", "-c", kPythonServer, certs.cert.c_str(), certs.key.c_str(),
             nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  char line[32] = {};
  const long n = ::read(out[0], line, sizeof line - 1);
  ::close(out[0]);
  Result r;
  if (n > 0) r = drive(std::atoi(line), o, [pid] { return process_cpu(pid); });
  ::kill(pid, SIGTERM);
  (void)::waitpid(pid, nullptr, 0);
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const char* next = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--size") {
      o.size = std::strtoul(next, nullptr, 10);
      ++i;
    } else if (a == "--connections") {
      o.connections = std::atoi(next);
      ++i;
    } else if (a == "--seconds") {
      o.seconds = std::atof(next);
      ++i;
    } else if (a == "--runs") {
      o.runs = std::atoi(next);
      ++i;
    } else if (a == "--servers") {
      o.servers = next;
      ++i;
    } else {
      std::fprintf(stderr,
                   "usage: tls_bench [--size BYTES] [--connections C] [--seconds S] [--runs R] "
                   "[--servers asyncio-epoll,asyncio-io_uring,openssl,python]\n");
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  const Certs certs;
  struct Row {
    std::string name;
    std::function<Result()> run;
  };
  std::vector<Row> rows;
  auto wanted = [&](const std::string& name) {
    return ("," + o.servers + ",").find("," + name + ",") != std::string::npos;
  };
  if (wanted("openssl")) {
    rows.push_back({"openssl", [&] {
                      return run_thread_server([&](ServerControl& c) { openssl_server(certs, c); },
                                               o);
                    }});
  }
  for (auto [name, backend] : {std::pair{"asyncio-epoll", asyncio::Backend::epoll},
                               std::pair{"asyncio-io_uring", asyncio::Backend::io_uring}}) {
    if (!wanted(name)) continue;
    rows.push_back({name, [&, backend = backend] {
                      return run_thread_server(
                          [&](ServerControl& c) { asyncio_server(backend, certs, c); }, o);
                    }});
  }
  if (wanted("python") && std::system("python3 -c 'import ssl' >/dev/null 2>&1") == 0) {
    rows.push_back({"python-asyncio", [&] { return run_python_server(certs, o); }});
  }
  std::printf("TLS 1.3 echo, %zu-byte messages, %d connections, %.1f s x %d runs (median)\n",
              o.size, o.connections, o.seconds, o.runs);
  std::printf("%-18s %12s %16s %12s %10s\n", "server", "RT/s", "srv CPU us/RT", "of it user",
              "vs openssl");
  double base = 0;
  for (const Row& row : rows) {
    std::vector<double> rates;
    std::vector<double> cpus;
    std::vector<double> users;
    for (int i = 0; i < o.runs; ++i) {
      const Result r = row.run();
      rates.push_back(r.per_second);
      cpus.push_back(r.cpu_us);
      users.push_back(r.user_us);
    }
    const double cpu = median(cpus);
    if (row.name == "openssl") base = cpu;
    std::printf("%-18s %12.0f %16.2f %12.2f %10.2f\n", row.name.c_str(), median(rates), cpu,
                median(users), base > 0 ? cpu / base : 0.0);
    std::fflush(stdout);
  }
  return 0;
}
