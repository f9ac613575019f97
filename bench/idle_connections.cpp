// idle_connections: the memory a streams server spends per idle connection.
//
//   idle_connections [N] [--backend epoll|io_uring] [--hello]
//
// A start_server echo server (each handler parked in reader.read(), as a real server's idle
// clients are) on 127.0.0.1:0; a child process opens N connections to it and keeps them open
// without sending (with --hello, each first sends "hi" and reads the echo, so every connection
// has been read from once: what a keep-alive client between requests costs). The server's
// resident memory (VmRSS) is read before the first connection
// and once all N handlers run; the difference over N is the cost of one idle connection
// (transport, protocol, reader, writer, handler task frame; kernel socket buffers are not in
// RSS). Prints one JSON line: {"connections": N, "rss_before_kib": ..., "rss_after_kib": ...,
// "bytes_per_connection": ...}. The target: at most 4 KiB per connection.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asyncio.hpp>

namespace {

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &r);
  }
}

/// The child: N connections to 127.0.0.1:port, held until its stdin (a pipe) closes.
[[noreturn]] void clients(std::uint16_t port, int n, int hold_fd, bool hello) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {  // NOLINT
      std::perror("idle_connections: connect");
      std::_Exit(1);
    }
    if (hello) {
      char echo[2];
      if (::send(fd, "hi", 2, MSG_NOSIGNAL) != 2 || ::recv(fd, echo, 2, MSG_WAITALL) != 2) {
        std::perror("idle_connections: hello");
        std::_Exit(1);
      }
    }
    fds.push_back(fd);
  }
  char c = 0;
  while (::read(hold_fd, &c, 1) > 0) {
  }
  std::_Exit(0);
}

int connected = 0;
int answered = 0;  // echoes sent

asyncio::Coro<void> idle(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  ++connected;
  try {
    for (;;) {
      const std::string data = co_await reader.read(65536);
      if (data.empty()) break;
      writer.write(data);
      co_await writer.drain();
      ++answered;
    }
  } catch (const asyncio::OSError&) {
  }
}

asyncio::Coro<int> measure(int n, bool hello) {
  asyncio::Server server = co_await asyncio::start_server(idle, "127.0.0.1", 0, {.backlog = 4096});
  int hold[2];  // the child holds its connections until this pipe closes
  if (::pipe(hold) != 0) co_return 1;
  const long before = rss_kib();
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(hold[1]);
    clients(server.port(), n, hold[0], hello);
  }
  ::close(hold[0]);
  int& seen_by = hello ? answered : connected;
  for (int waited = 0; seen_by < n && waited < 60000; waited += 10) co_await asyncio::sleep(0.01);
  co_await asyncio::sleep(0.1);  // the last answers' next receives are armed
  const long after = rss_kib();
  const int seen = seen_by;
  ::close(hold[1]);
  int status = 0;
  ::waitpid(child, &status, 0);
  std::printf(
      "{\"connections\": %d, \"rss_before_kib\": %ld, \"rss_after_kib\": %ld, "
      "\"bytes_per_connection\": %.0f}\n",
      seen, before, after, seen > 0 ? static_cast<double>(after - before) * 1024.0 / seen : 0.0);
  co_return seen == n ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 10000;
  bool hello = false;
  asyncio::RunOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--hello") {
      hello = true;
    } else if (a == "--backend" && i + 1 < argc) {
      const std::string b = argv[++i];
      options.backend = b == "epoll" ? asyncio::Backend::epoll : asyncio::Backend::io_uring;
    } else {
      n = std::atoi(argv[i]);
    }
  }
  raise_fd_limit();
  return asyncio::run(measure(n, hello), options);
}
