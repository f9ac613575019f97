// udp_bench: a UDP echo server's throughput and CPU per datagram, asyncio-cpp's datagram
// endpoint (each engine) against a plain C recvfrom/sendto loop (issue 14's anchor).
//
//   udp_bench [--datagrams N] [--size BYTES] [--window W] [--runs R] [--backend
//   epoll|io_uring|both]
//
// A client thread (plain blocking sockets, the same for every server) keeps W datagrams in flight
// to the server on 127.0.0.1 and sends a new one for each echo, until N echoes came back (a
// datagram lost on the way is replaced after a 0.2 s silence). The server runs on its own thread
// and reports its own CPU time (CLOCK_THREAD_CPUTIME_ID) over the run. Printed per server: the
// median over R runs of datagrams per second and of server CPU µs per datagram, and the ratio
// of the latter to the plain C server's.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <asyncio.hpp>

namespace {

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double wall_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Result {
  double per_second = 0;
  double cpu_us = 0;  // server CPU per datagram
};

struct Options {
  long datagrams = 200000;
  std::size_t size = 64;
  int window = 32;
  int runs = 3;
};

/// The client: keeps `window` datagrams in flight to `port` until `n` echoes came back, then
/// sends "STOP". Returns the wall time of the exchange.
double run_client(std::uint16_t port, const Options& o) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);  // NOLINT
  timeval tv{0, 200000};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string payload(o.size, 'x');
  std::vector<char> buf(65536);
  const double t0 = wall_seconds();
  for (int i = 0; i < o.window; ++i) (void)::send(fd, payload.data(), payload.size(), 0);
  long echoed = 0;
  while (echoed < o.datagrams) {
    const ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r < 0) {  // lost: put one back in flight
      (void)::send(fd, payload.data(), payload.size(), 0);
      continue;
    }
    ++echoed;
    if (echoed + o.window <= o.datagrams) (void)::send(fd, payload.data(), payload.size(), 0);
  }
  const double elapsed = wall_seconds() - t0;
  for (int i = 0; i < 3; ++i) (void)::send(fd, "STOP", 4, 0);
  ::close(fd);
  return elapsed;
}

/// The anchor: a blocking recvfrom/sendto loop.
Result plain_server(const Options& o) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);  // NOLINT
  socklen_t len = sizeof a;
  (void)::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);  // NOLINT
  std::promise<double> cpu;
  std::future<double> cpu_done = cpu.get_future();
  std::thread server([fd, &cpu] {
    const double c0 = thread_cpu_seconds();
    std::vector<char> buf(65536);
    for (;;) {
      sockaddr_storage from{};
      socklen_t flen = sizeof from;
      const ssize_t r =
          ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &flen);
      if (r < 0) continue;
      if (r == 4 && std::memcmp(buf.data(), "STOP", 4) == 0) break;
      (void)::sendto(fd, buf.data(), static_cast<std::size_t>(r), 0,
                     reinterpret_cast<sockaddr*>(&from), flen);
    }
    cpu.set_value(thread_cpu_seconds() - c0);
  });
  const double wall = run_client(ntohs(a.sin_port), o);
  const double cpu_s = cpu_done.get();
  server.join();
  ::close(fd);
  return {static_cast<double>(o.datagrams) / wall, cpu_s * 1e6 / static_cast<double>(o.datagrams)};
}

/// The server under test: a DatagramProtocol that echoes, until "STOP".
class Echo final : public asyncio::DatagramProtocol {
 public:
  void connection_made(asyncio::DatagramTransport& t) override { transport_ = &t; }
  void datagram_received(std::string_view data, const asyncio::SocketAddress& addr) override {
    if (data == "STOP") {
      stopped.set();
      return;
    }
    transport_->sendto(data, addr);
  }
  asyncio::Event stopped;

 private:
  asyncio::DatagramTransport* transport_ = nullptr;
};

std::shared_ptr<Echo> make_echo() {
  return std::make_shared<Echo>();
}

asyncio::Coro<double> serve(std::promise<std::uint16_t>* port) {
  const double c0 = thread_cpu_seconds();
  asyncio::DatagramOptions o;
  o.local_addr = asyncio::SocketAddress::ip("127.0.0.1", 0);
  auto [transport, protocol] = co_await asyncio::create_datagram_endpoint(make_echo, o);
  port->set_value(transport->sockname().port());
  co_await protocol->stopped.wait();
  transport->close();
  co_return thread_cpu_seconds() - c0;
}

Result asyncio_server(const Options& o, asyncio::Backend backend) {
  std::promise<std::uint16_t> port;
  std::future<std::uint16_t> port_known = port.get_future();
  std::promise<double> cpu;
  std::future<double> cpu_done = cpu.get_future();
  std::thread server([&port, &cpu, backend] {
    asyncio::RunOptions ro;
    ro.backend = backend;
    cpu.set_value(asyncio::run(serve(&port), ro));
  });
  const double wall = run_client(port_known.get(), o);
  const double cpu_s = cpu_done.get();
  server.join();
  return {static_cast<double>(o.datagrams) / wall, cpu_s * 1e6 / static_cast<double>(o.datagrams)};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void usage() {
  std::puts(
      "usage: udp_bench [--datagrams N] [--size BYTES] [--window W] [--runs R]\n"
      "                 [--backend epoll|io_uring|both]");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string backends = "both";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--datagrams" && has_value) {
      o.datagrams = std::atol(argv[++i]);
    } else if (a == "--size" && has_value) {
      o.size = std::strtoul(argv[++i], nullptr, 10);
    } else if (a == "--window" && has_value) {
      o.window = std::atoi(argv[++i]);
    } else if (a == "--runs" && has_value) {
      o.runs = std::atoi(argv[++i]);
    } else if (a == "--backend" && has_value) {
      backends = argv[++i];
    } else {
      usage();
      return a == "--help" ? 0 : 2;
    }
  }
  if (o.datagrams < 1 || o.size < 8 || o.size > 65000 || o.window < 1 || o.runs < 1) {
    usage();
    return 2;
  }
  std::printf("udp_bench: %ld datagrams of %zu bytes, %d in flight, median of %d runs\n",
              o.datagrams, o.size, o.window, o.runs);
  struct Row {
    const char* name;
    int kind;  // 0 plain, 1 epoll, 2 io_uring
  };
  std::vector<Row> rows{{"plain C recvfrom/sendto", 0}};
  if (backends == "both" || backends == "epoll") rows.push_back({"asyncio-cpp epoll", 1});
  if (backends == "both" || backends == "io_uring") rows.push_back({"asyncio-cpp io_uring", 2});
  std::vector<std::vector<double>> rate(rows.size());
  std::vector<std::vector<double>> cpu(rows.size());
  for (int r = 0; r < o.runs; ++r) {  // interleaved: drift hits every row alike
    for (std::size_t k = 0; k < rows.size(); ++k) {
      Result x;
      if (rows[k].kind == 0) {
        x = plain_server(o);
      } else {
        x = asyncio_server(
            o, rows[k].kind == 1 ? asyncio::Backend::epoll : asyncio::Backend::io_uring);
      }
      rate[k].push_back(x.per_second);
      cpu[k].push_back(x.cpu_us);
    }
  }
  const double anchor = median(cpu[0]);
  std::printf(
      "| server | datagrams/s | server CPU µs per datagram | ratio |\n|---|---:|---:|---:|\n");
  for (std::size_t k = 0; k < rows.size(); ++k) {
    std::printf("| %s | %.0f | %.3f | %.2fx |\n", rows[k].name, median(rate[k]), median(cpu[k]),
                median(cpu[k]) / anchor);
  }
  return 0;
}
