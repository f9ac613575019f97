// many_clients: seed article 004's backend server - client 2 is served while client 1 waits -
// with real sockets and the stream API.
//
//   many_clients [--virtual] [--backend epoll|io_uring] [--delay SECONDS]
//
// A server (start_server on 127.0.0.1, port 0: the kernel picks one) runs a task per
// connection. Client 1's request needs a slow "backend call" (a database query, here an
// asyncio::sleep of --delay seconds, default 1; the article's 3 s, shortened); client 2's needs
// none. Client 2 connects while client 1's call is pending, and gets its answer at once: the
// server's one thread is not blocked by client 1, whose handler is suspended in the sleep. The
// program prints both clients' timelines (times relative to the start) and exits with 1 if
// client 2's answer did not come first.
//
// With --virtual the loop runs under virtual time, as the tour runs it. The sockets are real
// I/O in flight, so the loop waits for them in real time and its clock follows the real time
// that passed; when the backend's timer is all that is left to happen, the clock goes to it
// exactly. The output is the same as in real time (and the run takes as long).
//
// Python (the article):
//     async def handle_client1():
//         print("client 1: request being handled")
//         await asyncio.sleep(3)  # imitates an I/O-bound call
//         print("client 1: I/O done")
//     async def handle_client2(): ...  # the same with sleep(1)
//     await asyncio.gather(handle_client1(), handle_client2())
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <asyncio.hpp>

namespace {

/// What the program saw, for the timelines and the final check.
struct Story {
  double t0 = 0;
  double backend_delay = 1.0;
  asyncio::Event client1_waiting;        // set while client 1's backend call is pending
  std::vector<std::string> timeline[3];  // per client (index 1 and 2)
  std::vector<int> answer_order;         // client numbers, in the order they got their answers
};

double now(const Story& story) {
  return asyncio::get_running_loop().time() - story.t0;
}

/// Prints a line stamped with the loop time since the start.
void say(const Story& story, const std::string& line) {
  std::printf("t=%4.2f %s\n", now(story), line.c_str());
  std::fflush(stdout);
}

/// Records an event of client `id`'s timeline and prints it.
void note(Story& story, int id, const std::string& what) {
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "t=%4.2f ", now(story));
  story.timeline[id].push_back(stamp + what);
  say(story, "client " + std::to_string(id) + " " + what);
}

/// One connection: read the request line, call the backend when the request needs it, answer.
asyncio::Coro<void> handle(Story* story, asyncio::StreamReader reader,
                           asyncio::StreamWriter writer) {
  const std::string request = co_await reader.readline();  // "1 balance?\n"
  const int id = std::atoi(request.c_str());
  if (id == 1) {
    char line[96];
    std::snprintf(line, sizeof line,
                  "server: client 1 asks for its balance: calling the backend (%.2f s)",
                  story->backend_delay);
    say(*story, line);
    story->client1_waiting.set();
    co_await asyncio::sleep(story->backend_delay);  // the slow backend call
    say(*story, "server: the backend answered for client 1");
    writer.write("1 balance: 42\n");
  } else {
    say(*story, "server: client " + std::to_string(id) + " asks for the time: no backend needed");
    writer.write(std::to_string(id) + " time: now\n");
  }
  co_await writer.drain();
  writer.close();
  co_await writer.wait_closed();
}

/// The connection callback (built here, not inside a coroutine).
asyncio::ClientConnected make_handler(Story* story) {
  return [story](asyncio::StreamReader r, asyncio::StreamWriter w) {
    return handle(story, std::move(r), std::move(w));
  };
}

asyncio::Coro<void> client(Story* story, int id, std::uint16_t port) {
  auto connection = co_await asyncio::open_connection("127.0.0.1", port);
  asyncio::StreamReader reader = connection.first;
  asyncio::StreamWriter writer = connection.second;
  note(*story, id, id == 1 ? "sends: what is my balance?" : "sends: what time is it?");
  writer.write(id == 1 ? "1 balance?\n" : std::to_string(id) + " time?\n");
  co_await writer.drain();
  std::string answer = co_await reader.readline();
  if (!answer.empty() && answer.back() == '\n') answer.pop_back();
  note(*story, id, "gets its answer: '" + answer + "'");
  story->answer_order.push_back(id);
  writer.close();
  co_await writer.wait_closed();
}

asyncio::Coro<int> main_coro(double delay) {
  Story story;
  story.t0 = asyncio::get_running_loop().time();
  story.backend_delay = delay;
  asyncio::Server server = co_await asyncio::start_server(make_handler(&story), "127.0.0.1", 0);
  say(story, "server: listening on 127.0.0.1:" + std::to_string(server.port()));
  asyncio::Task<void> first = asyncio::create_task(client(&story, 1, server.port()));
  // Client 2 arrives while the server waits for the backend on client 1's behalf.
  co_await story.client1_waiting.wait();
  asyncio::Task<void> second = asyncio::create_task(client(&story, 2, server.port()));
  co_await first;
  co_await second;
  server.close();
  co_await server.wait_closed();

  std::printf("\ntimelines (seconds since the start):\n");
  for (int id = 1; id <= 2; ++id) {
    for (const std::string& line : story.timeline[id]) {
      std::printf("  client %d  %s\n", id, line.c_str());
    }
  }
  const bool ok = story.answer_order == std::vector<int>{2, 1};
  std::printf("%s\n", ok ? "client 2 got its answer first: one thread served it while client 1 "
                           "waited for the backend"
                         : "FAILED: client 2 should have got its answer before client 1");
  co_return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  asyncio::RunOptions options;
  double delay = 1.0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--virtual") == 0) {
      options.virtual_time = true;
    } else if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      const std::string name = argv[++i];
      options.backend = name == "epoll"      ? asyncio::Backend::epoll
                        : name == "io_uring" ? asyncio::Backend::io_uring
                                             : asyncio::Backend::automatic;
    } else if (std::strcmp(argv[i], "--delay") == 0 && i + 1 < argc) {
      delay = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--virtual] [--backend epoll|io_uring] [--delay SECONDS]\n",
                   argv[0]);
      return 2;
    }
  }
  try {
    return asyncio::run(main_coro(delay), options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "many_clients: %s\n", e.what());
    return 1;
  }
}
