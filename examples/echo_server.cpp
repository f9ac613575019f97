// echo_server: the classic stream echo server (Python documentation's "TCP echo server using
// streams"), for load tests with echo_client.
//
//   echo_server [--host HOST] [--port PORT] [--backend epoll|io_uring]
//
// Listens on HOST (default 127.0.0.1) and PORT (default 8888; 0: the kernel picks one) and
// prints "listening on HOST:PORT" as its first line. Each connection is served by its own task:
// read up to 64 KiB, write it back, drain (wait while the client is slow to read), until the
// client closes its side. Runs until Ctrl-C (or SIGTERM, which ends the process).
//
// Python:
//     async def handle_echo(reader, writer):
//         while data := await reader.read(65536):
//             writer.write(data)
//             await writer.drain()
//         writer.close()
//         await writer.wait_closed()
//     server = await asyncio.start_server(handle_echo, '127.0.0.1', 8888)
//     async with server:
//         await server.serve_forever()
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <system_error>
#include <utility>

#include <asyncio.hpp>

namespace {

/// One connection: echo every chunk until end of file.
asyncio::Coro<void> handle_echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  try {
    for (;;) {  // ends at the client's end of file
      std::string data = co_await reader.read(65536);
      if (data.empty()) break;
      writer.write(data);
      co_await writer.drain();  // back-pressure: do not read more than the client takes
    }
  } catch (const std::system_error&) {
    // The client reset the connection: nothing more to echo.
  }
  writer.close();
  try {
    co_await writer.wait_closed();  // rethrows the error that closed the connection, if any
  } catch (const std::system_error&) {
  }
}

asyncio::Coro<void> serve(std::string host, std::uint16_t port) {
  asyncio::Server server = co_await asyncio::start_server(handle_echo, host, port);
  std::printf("listening on %s:%u\n", host.c_str(), static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  co_await server.serve_forever();  // until cancelled (Ctrl-C)
}

}  // namespace

int main(int argc, char** argv) {
  asyncio::RunOptions options;
  std::string host = "127.0.0.1";
  int port = 8888;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--host" && i + 1 < argc) {
      host = argv[++i];
    } else if (arg == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (arg == "--backend" && i + 1 < argc) {
      const std::string name = argv[++i];
      if (name != "epoll" && name != "io_uring") {
        std::fprintf(stderr, "echo_server: --backend epoll|io_uring\n");
        return 2;
      }
      options.backend = name == "epoll" ? asyncio::Backend::epoll : asyncio::Backend::io_uring;
    } else {
      std::fprintf(stderr, "usage: %s [--host HOST] [--port PORT] [--backend epoll|io_uring]\n",
                   argv[0]);
      return 2;
    }
  }
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "echo_server: bad port %d\n", port);
    return 2;
  }
  try {
    asyncio::run(serve(host, static_cast<std::uint16_t>(port)), options);
  } catch (const asyncio::KeyboardInterrupt&) {
    return 0;  // Ctrl-C
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
