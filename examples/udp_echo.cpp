// udp_echo: a UDP echo server written with a DatagramProtocol (Python documentation's "UDP Echo
// Server" and "UDP Echo Client"), and a client written with the coroutine-style DatagramSocket.
//
//   udp_echo --server [--host HOST] [--port PORT] [--backend epoll|io_uring]
//   udp_echo --client [--host HOST] --port PORT [--count N] [--size BYTES]
//   udp_echo --self-test [--count N] [--size BYTES]
//
// The server prints "listening on HOST:PORT" and sends every datagram back to where it came
// from, until Ctrl-C. The client sends N datagrams (each numbered, padded to BYTES), waits for
// each echo (0.5 s, then it resends, up to 5 times: UDP may lose datagrams), checks it, and
// prints a summary. --self-test runs both in one loop on a free port of 127.0.0.1; the exit
// status says whether every echo came back intact.
//
// Python:
//     class EchoServerProtocol(asyncio.DatagramProtocol):
//         def connection_made(self, transport):
//             self.transport = transport
//         def datagram_received(self, data, addr):
//             self.transport.sendto(data, addr)
//     transport, protocol = await loop.create_datagram_endpoint(
//         EchoServerProtocol, local_addr=('127.0.0.1', 9999))
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include <asyncio.hpp>

namespace {

/// The server: every datagram goes back to its sender.
class EchoServerProtocol final : public asyncio::DatagramProtocol {
 public:
  void connection_made(asyncio::DatagramTransport& transport) override { transport_ = &transport; }
  void datagram_received(std::string_view data, const asyncio::SocketAddress& addr) override {
    transport_->sendto(data, addr);
    ++echoed_;
  }
  void error_received(std::exception_ptr exc) override {
    try {
      std::rethrow_exception(exc);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "udp_echo: %s\n", e.what());
    }
  }
  [[nodiscard]] long echoed() const noexcept { return echoed_; }

 private:
  asyncio::DatagramTransport* transport_ = nullptr;
  long echoed_ = 0;
};

std::shared_ptr<EchoServerProtocol> make_server() {
  return std::make_shared<EchoServerProtocol>();
}

/// Datagram `i` of the client: its number, padded with a pattern to `size` bytes.
std::string message(int i, std::size_t size) {
  std::string m = "datagram " + std::to_string(i) + " ";
  while (m.size() < size) m.push_back(static_cast<char>('a' + (m.size() + i) % 26));
  return m;
}

/// Sends `count` datagrams to `to`, each until its echo comes back; true when all did.
asyncio::Coro<bool> run_client(asyncio::SocketAddress to, int count, std::size_t size) {
  asyncio::DatagramSocket sock = asyncio::DatagramSocket::connect(to);
  int ok = 0;
  int resent = 0;
  for (int i = 0; i < count; ++i) {
    const std::string m = message(i, size);
    bool back = false;
    for (int attempt = 0; attempt < 5 && !back; ++attempt) {
      if (attempt > 0) ++resent;
      (void)co_await sock.send(m);
      try {
        // A datagram may also be the late echo of an earlier resend: skip those.
        for (;;) {
          std::string echo = co_await asyncio::wait_for(sock.recv(), 0.5);
          if (echo == m) {
            back = true;
            break;
          }
        }
      } catch (const asyncio::TimeoutError&) {
        // lost (or its echo was): send it again
      }
    }
    if (back) ++ok;
  }
  std::printf("%d of %d datagrams of %zu bytes echoed intact (%d resent)\n", ok, count, size,
              resent);
  co_return ok == count;
}

asyncio::Coro<void> serve(std::string host, std::uint16_t port) {
  asyncio::DatagramOptions o;
  o.local_addr = asyncio::SocketAddress::ip(host, port);
  auto [transport, protocol] = co_await asyncio::create_datagram_endpoint(make_server, o);
  std::printf("listening on %s\n", transport->sockname().to_string().c_str());
  std::fflush(stdout);
  try {
    co_await asyncio::sleep(1e9);  // until Ctrl-C cancels the main task
  } catch (const asyncio::CancelledError&) {
    std::printf("echoed %ld datagrams\n", protocol->echoed());
    transport->close();
    throw;
  }
}

asyncio::Coro<bool> self_test(int count, std::size_t size) {
  asyncio::DatagramOptions o;
  o.local_addr = asyncio::SocketAddress::ip("127.0.0.1", 0);
  auto [transport, protocol] = co_await asyncio::create_datagram_endpoint(make_server, o);
  std::printf("server on %s\n", transport->sockname().to_string().c_str());
  const bool ok = co_await run_client(transport->sockname(), count, size);
  std::printf("the server echoed %ld datagrams\n", protocol->echoed());
  transport->close();
  co_return ok;
}

void usage() {
  std::puts(
      "usage: udp_echo --server [--host HOST] [--port PORT]\n"
      "       udp_echo --client [--host HOST] --port PORT [--count N] [--size BYTES]\n"
      "       udp_echo --self-test [--count N] [--size BYTES]\n"
      "       (any of them: [--backend epoll|io_uring])");
}

}  // namespace

int main(int argc, char** argv) {
  enum class Mode { none, server, client, self_test } mode = Mode::none;
  std::string host = "127.0.0.1";
  unsigned long port = 9999;
  int count = 100;
  std::size_t size = 64;
  asyncio::RunOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--server") {
      mode = Mode::server;
    } else if (a == "--client") {
      mode = Mode::client;
    } else if (a == "--self-test") {
      mode = Mode::self_test;
    } else if (a == "--host" && has_value) {
      host = argv[++i];
    } else if (a == "--port" && has_value) {
      port = std::strtoul(argv[++i], nullptr, 10);
    } else if (a == "--count" && has_value) {
      count = std::atoi(argv[++i]);
    } else if (a == "--size" && has_value) {
      size = std::strtoul(argv[++i], nullptr, 10);
    } else if (a == "--backend" && has_value) {
      const std::string b = argv[++i];
      options.backend = b == "io_uring" ? asyncio::Backend::io_uring : asyncio::Backend::epoll;
    } else {
      usage();
      return a == "--help" ? 0 : 2;
    }
  }
  if (port > 65535 || count < 0 || size < 16 || size > 65000) {
    std::fputs("udp_echo: --port 0-65535, --count >= 0, --size 16-65000\n", stderr);
    return 2;
  }
  try {
    switch (mode) {
      case Mode::server:
        asyncio::run(serve(host, static_cast<std::uint16_t>(port)), options);
        return 0;
      case Mode::client:
        return asyncio::run(
                   run_client(asyncio::SocketAddress::ip(host, static_cast<std::uint16_t>(port)),
                              count, size),
                   options)
                   ? 0
                   : 1;
      case Mode::self_test:
        return asyncio::run(self_test(count, size), options) ? 0 : 1;
      case Mode::none:
        break;
    }
  } catch (const asyncio::KeyboardInterrupt&) {
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "udp_echo: %s\n", e.what());
    return 1;
  }
  usage();
  return 2;
}
