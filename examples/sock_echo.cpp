// sock_echo: the seed articles' server (one thread, many clients) with the low-level socket
// API, on both I/O engines.
//
//   sock_echo [--virtual] [--clients N]
//
// A listener on 127.0.0.1 (port 0: the kernel picks one) accepts connections with
// sock_accept(); each connection is served by its own task, which reads a line with sock_recv()
// and sends it back upper-cased with sock_sendall(). N clients (default 3) connect at once with
// sock_connect(), each after a different delay, and print the answer they get. The whole thing
// runs twice: on the epoll engine and on the io_uring engine (where the kernel allows it).
// Python: loop.sock_accept / sock_recv / sock_sendall / sock_connect.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asyncio.hpp>
#include <asyncio/sockets.hpp>

namespace {

void say(double t0, const std::string& line) {
  std::printf("[+%4.2fs] %s\n", asyncio::get_running_loop().time() - t0, line.c_str());
  std::fflush(stdout);
}

/// Closes an fd when it goes out of scope.
struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// One connection: echo each chunk upper-cased until the client closes.
asyncio::Coro<void> serve(int fd, double t0) {
  Fd conn(fd);
  for (;;) {
    std::string data = co_await asyncio::sock_recv(fd, 1024);
    if (data.empty()) break;  // end of file: the client is done
    for (char& c : data) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    co_await asyncio::sock_sendall(fd, data);
  }
  say(t0, "server: connection " + std::to_string(fd) + " closed");
}

/// The accept loop: a task per connection, as the seed articles' server.
asyncio::Coro<void> accept_loop(int listener, int clients, double t0) {
  std::vector<asyncio::Task<void>> handlers;
  for (int i = 0; i < clients; ++i) {
    auto [fd, peer] = co_await asyncio::sock_accept(listener);
    say(t0, "server: accepted a client from port " + std::to_string(peer.port()));
    handlers.push_back(asyncio::create_task(serve(fd, t0)));
  }
  for (auto& h : handlers) co_await h;
}

asyncio::Coro<void> client(int id, asyncio::SocketAddress server, double t0) {
  co_await asyncio::sleep(0.1 * id);
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  co_await asyncio::sock_connect(sock.fd, server);
  const std::string line = "hello from client " + std::to_string(id) + "\n";
  co_await asyncio::sock_sendall(sock.fd, line);
  std::string answer;
  while (answer.size() < line.size()) {
    std::string part = co_await asyncio::sock_recv(sock.fd, 1024);
    if (part.empty()) break;
    answer += part;
  }
  answer.pop_back();  // the newline
  say(t0, "client " + std::to_string(id) + ": got '" + answer + "'");
}

asyncio::Coro<void> main_coro(int clients) {
  const double t0 = asyncio::get_running_loop().time();
  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||  // NOLINT
      ::listen(listener.fd, 128) != 0 ||
      ::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {  // NOLINT
    throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
  }
  const asyncio::SocketAddress where(reinterpret_cast<sockaddr*>(&addr), len);  // NOLINT
  say(t0, "server: listening on 127.0.0.1 (a port the kernel picked)");
  auto server = asyncio::create_task(accept_loop(listener.fd, clients, t0));
  std::vector<asyncio::Task<void>> tasks;
  for (int i = 1; i <= clients; ++i) tasks.push_back(asyncio::create_task(client(i, where, t0)));
  for (auto& t : tasks) co_await t;
  co_await server;
}

}  // namespace

int main(int argc, char** argv) {
  asyncio::RunOptions options;
  int clients = 3;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--virtual") == 0) {
      options.virtual_time = true;
    } else if (std::strcmp(argv[i], "--clients") == 0 && i + 1 < argc) {
      clients = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--virtual] [--clients N]\n", argv[0]);
      return 2;
    }
  }
  for (asyncio::Backend backend : {asyncio::Backend::epoll, asyncio::Backend::io_uring}) {
    const char* name = backend == asyncio::Backend::epoll ? "epoll" : "io_uring";
    options.backend = backend;
    std::printf("-- on the %s engine\n", name);
    try {
      asyncio::run(main_coro(clients), options);
    } catch (const asyncio::RuntimeError& e) {
      if (backend == asyncio::Backend::io_uring &&
          std::strstr(e.what(), "io_uring backend is not available") != nullptr) {
        std::printf("   (skipped: %s)\n", e.what());  // the kernel refuses io_uring here
        continue;
      }
      throw;
    }
  }
  return 0;
}
