// chat_server: a line-based chat room where a slow client cannot stall the others.
//
//   chat_server [--host HOST] [--port PORT]   serve (default 127.0.0.1:8888; 0: pick a port)
//   chat_server --demo                        a scripted chat on port 0, checked; exit 0 if fine
//
// A client's first line is its name; every later line goes to all the others as "name: line".
// The server announces joins and leaves ("* bob joined").
//
// Why one slow client cannot stall the room: the task that reads a client's line does not write
// to the other clients itself (a write + drain to a client who does not read would block it,
// and with it the sender). It puts the line into each recipient's own bounded Queue
// (put_nowait, never waits), and each client has a writer task that takes lines from its queue,
// writes them and drains. A client that does not read stops its writer task in drain(); its
// queue fills up, and when a line finds it full the server disconnects that client (abort())
// and tells the others. The kernel's send buffer is set small (SO_SNDBUF) so that a client who
// does not read is noticed after some hundreds of KiB, not megabytes.
//
// --demo starts the server on 127.0.0.1, port 0, and connects four clients in this process:
// alice, bob and carol chat; dave joins and never reads. Then alice pastes a long log (bulk
// lines, up to 5000 of 1000 bytes): dave falls behind and is disconnected, while bob and carol
// receive every bulk line. The transcript shows who sent and received what (bulk lines are
// counted, not shown). The demo exits with 1 if any expectation failed.
//
// Python: one asyncio.Queue(maxsize) per client and a writer task per client, as in
//     async def writer_task(queue, writer):
//         while True:
//             writer.write(await queue.get())
//             await writer.drain()
#include <algorithm>
#include <any>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/socket.h>

#include <asyncio.hpp>

namespace {

using namespace std::chrono_literals;

/// Lines a client may fall behind before it is disconnected.
constexpr std::size_t kQueueLines = 100;
/// The kernel send buffer of each connection (the kernel doubles it).
constexpr int kSendBuffer = 32 * 1024;

double g_t0 = 0;  // the loop time at the start, for the stamps

void say(const std::string& line) {
  std::printf("[+%5.2fs] %s\n", asyncio::get_running_loop().time() - g_t0, line.c_str());
  std::fflush(stdout);
}

std::string strip_newline(std::string line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line;
}

// ---- the server ------------------------------------------------------------------------------

/// A client of the room: its name, its writer and its queue of outgoing lines.
struct Member {
  Member(std::string n, asyncio::StreamWriter w) : name(std::move(n)), writer(std::move(w)) {}
  std::string name;
  asyncio::StreamWriter writer;
  asyncio::Queue<std::string> out{kQueueLines};
  bool gone = false;  // left or disconnected: no longer in the room
};

class Room {
 public:
  /// Adds a member, welcomes it and tells the others.
  std::shared_ptr<Member> join(std::string name, asyncio::StreamWriter writer) {
    auto member = std::make_shared<Member>(std::move(name), std::move(writer));
    std::string here;
    for (const auto& m : members_) here += (here.empty() ? "" : ", ") + m->name;
    member->out.put_nowait("* welcome " + member->name +
                           "; here: " + (here.empty() ? "nobody yet" : here) + "\n");
    broadcast(nullptr, "* " + member->name + " joined");
    members_.push_back(member);
    say("server: " + member->name + " joined");
    return member;
  }

  /// Removes a member that left (its queue is shut down: its writer task sends what is left).
  void leave(Member& member) {
    if (member.gone) return;
    remove(member);
    member.out.shutdown();
    say("server: " + member.name + " left");
    broadcast(nullptr, "* " + member.name + " left");
  }

  /// Queues `text` for every member but `from`; disconnects those whose queue is full.
  void broadcast(const Member* from, const std::string& text) {
    const std::string line = text + "\n";
    std::vector<std::shared_ptr<Member>> slow;
    for (const auto& m : members_) {
      if (m.get() == from) continue;
      if (m->out.full()) {
        slow.push_back(m);
      } else {
        m->out.put_nowait(line);
      }
    }
    for (const auto& m : slow) kick(*m);
  }

  [[nodiscard]] std::size_t size() const noexcept { return members_.size(); }

 private:
  void remove(Member& member) {
    member.gone = true;
    std::erase_if(members_, [&](const auto& m) { return m.get() == &member; });
  }

  /// Disconnects a member that fell kQueueLines lines behind.
  void kick(Member& member) {
    if (member.gone) return;
    remove(member);
    member.out.shutdown(true);          // its writer task stops
    member.writer.transport().abort();  // and the connection closes at once
    say("server: " + member.name + " is " + std::to_string(kQueueLines) +
        " lines behind: disconnected");
    broadcast(nullptr, "* " + member.name + " was disconnected (too slow)");
  }

  std::vector<std::shared_ptr<Member>> members_;
};

/// A member's writer task: its queue to its socket, at the pace the client reads.
asyncio::Coro<void> send_lines(std::shared_ptr<Member> member) {
  for (;;) {  // until the queue is shut down or the connection fails
    std::string line;
    try {
      line = co_await member->out.get();
    } catch (const asyncio::QueueShutDown&) {
      break;
    }
    member->writer.write(line);
    try {
      co_await member->writer.drain();
    } catch (const std::system_error&) {
      break;  // the connection is gone
    }
  }
}

/// One connection: the name, then lines until end of file (or until the member is kicked).
asyncio::Coro<void> handle(Room* room, asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  const std::any socket = writer.get_extra_info("socket");
  if (const int* fd = std::any_cast<int>(&socket)) {
    (void)::setsockopt(*fd, SOL_SOCKET, SO_SNDBUF, &kSendBuffer, sizeof kSendBuffer);
  }
  std::string name;
  try {
    name = strip_newline(co_await reader.readline());
  } catch (const std::exception&) {
    // A reset, or a name longer than the stream's limit: treated as no name.
  }
  if (name.empty()) {
    writer.close();
    co_await writer.wait_closed();
    co_return;
  }
  std::shared_ptr<Member> me = room->join(name, writer);
  asyncio::Task<void> sender = asyncio::create_task(send_lines(me), "send to " + name);
  try {
    for (;;) {  // until end of file, or until the member is disconnected
      const std::string line = co_await reader.readline();
      if (line.empty() || me->gone) break;
      room->broadcast(me.get(), me->name + ": " + strip_newline(line));
      // Let the writer tasks run before the next line: a burst that arrived in one read is
      // spread out, so a client that keeps up never finds its queue full.
      co_await asyncio::sleep(0);
    }
  } catch (const std::exception&) {
    // A reset, or a line longer than the stream's limit: the member leaves.
  }
  room->leave(*me);
  co_await sender;
  writer.close();
  try {
    co_await writer.wait_closed();
  } catch (const std::system_error&) {
  }
}

/// The connection callback (built here, not inside a coroutine).
asyncio::ClientConnected make_handler(Room* room) {
  return [room](asyncio::StreamReader r, asyncio::StreamWriter w) {
    return handle(room, std::move(r), std::move(w));
  };
}

asyncio::Coro<void> serve(std::string host, std::uint16_t port) {
  g_t0 = asyncio::get_running_loop().time();
  Room room;
  asyncio::Server server = co_await asyncio::start_server(make_handler(&room), host, port);
  std::printf("listening on %s:%u\n", host.c_str(), static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  co_await server.serve_forever();  // until Ctrl-C
}

// ---- the demo --------------------------------------------------------------------------------

/// A demo client: its connection, the lines it received (bulk lines only counted).
struct Client {
  explicit Client(std::string n) : name(std::move(n)) {}
  std::string name;
  asyncio::StreamReader reader;
  asyncio::StreamWriter writer{nullptr};
  asyncio::Queue<std::string> inbox;  // every line but the bulk ones, "" at end of file
  int bulk = 0;
  asyncio::Task<void> reading;
};

/// Counts a client's expectations and prints the failed ones.
struct Checks {
  int passed = 0;
  int failed = 0;
  void check(bool ok, const std::string& what) {
    if (ok) {
      ++passed;
    } else {
      ++failed;
      say("FAILED: " + what);
    }
  }
};

bool is_bulk(const std::string& line) {
  return line.rfind("alice: bulk ", 0) == 0;
}

/// A demo client's reader task: until end of file or a reset.
asyncio::Coro<void> read_lines(Client* c) {
  try {
    for (;;) {  // until end of file
      std::string line = co_await c->reader.readline();
      if (line.empty()) break;
      line = strip_newline(std::move(line));
      if (is_bulk(line)) {
        ++c->bulk;
      } else {
        c->inbox.put_nowait(std::move(line));
      }
    }
  } catch (const std::exception& e) {
    say(c->name + "'s connection failed: " + e.what());
  }
  c->inbox.put_nowait("");
}

asyncio::Coro<std::string> next_line(Client* c) {
  co_return co_await c->inbox.get();
}

/// Waits (at most 5 s) until `c` receives a line containing `needle`, printing what it gets.
asyncio::Coro<void> expect(Checks* checks, Client* c, std::string needle) {
  for (int i = 0; i < 50; ++i) {  // a line at most 50 lines later
    std::string line;
    try {
      line = co_await asyncio::wait_for(next_line(c), 5s);
    } catch (const asyncio::TimeoutError&) {
      break;
    }
    if (line.empty()) break;  // end of file
    say(std::string(c->name.size() < 5 ? 5 - c->name.size() : 0, ' ') + c->name + " <- " + line);
    if (line.find(needle) != std::string::npos) {
      checks->check(true, "");
      co_return;
    }
  }
  checks->check(false, c->name + " never received '" + needle + "'");
}

asyncio::Coro<void> send(Client* c, std::string text) {
  say(std::string(c->name.size() < 5 ? 5 - c->name.size() : 0, ' ') + c->name + " -> " + text);
  c->writer.write(text + "\n");
  co_await c->writer.drain();
}

/// Connects a client and sends its name; `reads`: start its reader task (dave never reads).
asyncio::Coro<void> connect(Client* c, std::uint16_t port, bool reads) {
  auto connection = co_await asyncio::open_connection("127.0.0.1", port);
  c->reader = connection.first;
  c->writer = connection.second;
  if (reads) c->reading = asyncio::create_task(read_lines(c), c->name + " reads");
  co_await send(c, c->name);
}

/// Dave finally reads: his backlog, then the end of the connection the server closed.
asyncio::Coro<std::size_t> read_until_closed(Client* c) {
  std::size_t total = 0;
  try {
    for (int i = 0; i < 100000; ++i) {  // at most 6.5 GB: the backlog is far smaller
      const std::string data = co_await c->reader.read(65536);
      if (data.empty()) break;
      total += data.size();
    }
  } catch (const std::system_error&) {
    // A reset is a fine end too.
  }
  co_return total;
}

asyncio::Coro<int> demo() {
  g_t0 = asyncio::get_running_loop().time();
  Checks checks;
  Room room;
  asyncio::Server server = co_await asyncio::start_server(make_handler(&room), "127.0.0.1", 0);
  const std::uint16_t port = server.port();
  say("server: listening on 127.0.0.1:" + std::to_string(port) + " (each client may fall " +
      std::to_string(kQueueLines) + " lines behind)");
  Client alice("alice"), bob("bob"), carol("carol"), dave("dave");

  co_await connect(&alice, port, true);
  co_await expect(&checks, &alice, "* welcome alice");
  co_await connect(&bob, port, true);
  co_await expect(&checks, &bob, "* welcome bob");
  co_await expect(&checks, &alice, "* bob joined");
  co_await connect(&carol, port, true);
  co_await expect(&checks, &carol, "* welcome carol");
  co_await expect(&checks, &alice, "* carol joined");
  co_await expect(&checks, &bob, "* carol joined");
  co_await connect(&dave, port, false);  // dave never reads
  for (Client* c : {&alice, &bob, &carol}) co_await expect(&checks, c, "* dave joined");

  co_await send(&alice, "hello everyone");
  co_await expect(&checks, &bob, "alice: hello everyone");
  co_await expect(&checks, &carol, "alice: hello everyone");
  co_await send(&bob, "hi alice!");
  co_await expect(&checks, &alice, "bob: hi alice!");
  co_await expect(&checks, &carol, "bob: hi alice!");
  co_await send(&carol, "hey, both of you");
  co_await expect(&checks, &alice, "carol: hey, both of you");
  co_await expect(&checks, &bob, "carol: hey, both of you");

  say("alice pastes a long log: bulk lines of 1000 bytes, 50 at a time, as fast as bob reads, "
      "until dave is dropped");
  int sent = 0;
  for (int chunk = 0; chunk < 100 && bob.inbox.empty(); ++chunk) {  // at most 5000 lines
    for (int i = 0; i < 50; ++i, ++sent) {
      std::string line = "bulk " + std::to_string(sent) + ' ';
      line.resize(999, static_cast<char>('a' + sent % 26));
      alice.writer.write(line + "\n");
    }
    co_await alice.writer.drain();
    // At the pace bob reads (at most 2 s a chunk): the server's queues, not alice, set it.
    for (int wait = 0; wait < 2000 && bob.bulk < sent && bob.inbox.empty(); ++wait) {
      co_await asyncio::sleep(0.001);
    }
  }
  say("alice has sent " + std::to_string(sent) + " bulk lines");
  for (Client* c : {&bob, &carol, &alice}) co_await expect(&checks, c, "* dave was disconnected");
  co_await send(&alice, "that was all: " + std::to_string(sent) + " lines");
  co_await expect(&checks, &bob, "alice: that was all");
  co_await expect(&checks, &carol, "alice: that was all");
  say("bob received " + std::to_string(bob.bulk) + " bulk lines, carol " +
      std::to_string(carol.bulk));
  checks.check(bob.bulk == sent, "bob should have received all " + std::to_string(sent));
  checks.check(carol.bulk == sent, "carol should have received all " + std::to_string(sent));

  co_await send(&bob, "still here?");
  co_await expect(&checks, &alice, "bob: still here?");
  co_await expect(&checks, &carol, "bob: still here?");

  std::size_t backlog = 0;
  bool closed = false;
  try {
    backlog = co_await asyncio::wait_for(read_until_closed(&dave), 10s);
    closed = true;
  } catch (const asyncio::TimeoutError&) {
  }
  say("dave finally reads: " + std::to_string(backlog) +
      " bytes of backlog, then the connection ends (the server closed it)");
  checks.check(closed, "dave's connection should have been closed by the server");
  checks.check(room.size() == 3, "three members should be left");

  // Everyone leaves: each one's end of file, its "left" notice to the others, its reader ending.
  co_await send(&alice, "bye");
  co_await expect(&checks, &bob, "alice: bye");
  alice.writer.write_eof();
  co_await expect(&checks, &bob, "* alice left");
  co_await expect(&checks, &carol, "* alice left");
  bob.writer.write_eof();
  co_await expect(&checks, &carol, "* bob left");
  carol.writer.write_eof();
  for (Client* c : {&alice, &bob, &carol}) {
    try {
      co_await asyncio::wait_for(c->reading, 5s);
      checks.check(true, "");
    } catch (const asyncio::TimeoutError&) {
      checks.check(false, c->name + "'s connection should have ended");
    }
    c->writer.close();
  }
  dave.writer.close();
  server.close();
  try {
    co_await asyncio::wait_for(server.wait_closed(), 5s);
  } catch (const asyncio::TimeoutError&) {
    checks.check(false, "the server should have closed");
  }
  say(std::to_string(checks.passed) + " expectations held, " + std::to_string(checks.failed) +
      " failed");
  co_return checks.failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8888;
  bool demo_mode = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--host" && i + 1 < argc) {
      host = argv[++i];
    } else if (arg == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (arg == "--demo") {
      demo_mode = true;
    } else {
      std::fprintf(stderr, "usage: %s [--host HOST] [--port PORT] | --demo\n", argv[0]);
      return 2;
    }
  }
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "chat_server: bad port %d\n", port);
    return 2;
  }
  try {
    if (demo_mode) return asyncio::run(demo());
    asyncio::run(serve(host, static_cast<std::uint16_t>(port)));
  } catch (const asyncio::KeyboardInterrupt&) {
    return 0;  // Ctrl-C
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chat_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
