// pipeline: a child's stdout streamed line by line into the parent's processing, and from there
// into a second child's stdin - a two-stage pipeline, producer -> this program -> sed.
//
//   pipeline [--lines N] [--interval SECONDS] [--backend epoll|io_uring]
//   pipeline --help
//
// The producer is a shell loop that prints N lines (default 20), one every --interval seconds
// (default 0.02), like a program logging events as they happen: "event 7: sensor 2 reads 26
// degrees". This program reads its stdout with readline() and handles each line the moment it
// arrives: it checks the event number (the lines must come in order), counts the words and keeps
// a running average of the readings. Each line, with the average appended, goes on to the second
// child, `sed -u` turning it into upper case, through its stdin: write() then drain(), so a
// stage 2 that fell behind would make this program wait (back-pressure) instead of buffering
// without bound. A task reads sed's stdout meanwhile. When the producer's stdout ends, closing
// sed's stdin ends sed, and both exit codes are collected.
//
// Every line is printed with the time it arrived (seconds since the start): the stage-1 lines
// come about --interval apart, each followed at once by its stage-2 echo - the lines are
// processed as they are produced, not all at the end. (sed needs -u: without it, writing to a
// pipe, it would keep its output in a buffer until it ends, and stage 2's lines would all come at
// the end. Programs that write with stdio do that; python3 has -u too.)
//
// Exit status 0 only if every line came through both stages, in order and unchanged (but for
// the case), the lines of each stage arrived spread over time (the last at least half of the
// producer's run time after the first: streamed, not in one burst at the end) and both children
// exited with 0.
//
// Python:
//     producer = await asyncio.create_subprocess_exec("sh", "-c", script, stdout=PIPE)
//     stage2 = await asyncio.create_subprocess_exec("sed", "-u", "...", stdin=PIPE, stdout=PIPE)
//     while line := await producer.stdout.readline():
//         stage2.stdin.write(process(line))
//         await stage2.stdin.drain()
//     stage2.stdin.close()
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <asyncio.hpp>

namespace {

/// The producer: prints "event I: sensor S reads T degrees" for I = 1..$1, sleeping $2 s after
/// each (sh's echo writes each line at once).
constexpr const char* kProducerScript =
    R"(i=1; while [ "$i" -le "$1" ]; do
  echo "event $i: sensor $((i % 3 + 1)) reads $((20 + i * 7 % 11)) degrees"
  i=$((i + 1)); sleep "$2"
done)";

/// What the program saw.
struct Story {
  double t0 = 0;
  int lines = 20;
  double interval = 0.02;
  std::vector<std::string> sent;      // the lines given to stage 2, in order
  std::vector<std::string> received;  // the lines stage 2 gave back, in order
  std::vector<double> arrived;        // when each stage-1 line arrived
  std::vector<double> returned;       // when each stage-2 line arrived
  bool in_order = true;               // the stage-1 event numbers were 1, 2, 3...
  long words = 0;
  long reading_sum = 0;
};

double since_start(const Story& story) {
  return asyncio::get_running_loop().time() - story.t0;
}

std::string strip_newline(std::string line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

/// Processes one stage-1 line: checks its number, counts its words, updates the average. The
/// line to send on to stage 2.
std::string process(Story& story, const std::string& line) {
  const int expected = static_cast<int>(story.arrived.size()) + 1;
  story.arrived.push_back(since_start(story));
  int number = 0;
  int reading = 0;
  if (std::sscanf(line.c_str(), "event %d: sensor %*d reads %d", &number, &reading) != 2 ||
      number != expected) {
    story.in_order = false;
  }
  std::istringstream in(line);
  std::string word;
  int words = 0;
  while (in >> word) ++words;
  story.words += words;
  story.reading_sum += reading;
  char average[64];
  std::snprintf(average, sizeof average, ", average %.1f",
                static_cast<double>(story.reading_sum) / static_cast<double>(expected));
  std::printf("[+%5.3fs] stage 1 -> #%-2d %s  (%d words)\n", story.arrived.back(), expected,
              line.c_str(), words);
  std::fflush(stdout);
  return line + average;
}

/// Stage 2's output: read line by line until it ends.
asyncio::Coro<void> collect(Story* story, asyncio::StreamReader from_stage2) {
  for (;;) {
    std::string line = co_await from_stage2.readline();
    if (line.empty()) break;  // the end: readline() gives "" only there
    line = strip_newline(std::move(line));
    story->received.push_back(line);
    story->returned.push_back(since_start(*story));
    std::printf("[+%5.3fs] stage 2 <- #%-2zu %s\n", since_start(*story), story->received.size(),
                line.c_str());
    std::fflush(stdout);
  }
}

/// Prints the summary; whether every check passed.
bool report(const Story& story, int producer_status, int stage2_status) {
  const std::size_t n = story.arrived.size();
  const double spread = n > 0 ? story.arrived.back() - story.arrived.front() : 0;
  const double producer_time = (story.lines - 1) * story.interval;
  std::printf("\nstage 1: %zu lines, %s, from +%.3fs to +%.3fs; %ld words, average reading %.1f\n",
              n, story.in_order ? "in order" : "OUT OF ORDER", n > 0 ? story.arrived.front() : 0.0,
              n > 0 ? story.arrived.back() : 0.0, story.words,
              n > 0 ? static_cast<double>(story.reading_sum) / static_cast<double>(n) : 0.0);
  bool echoed = story.received.size() == story.sent.size();
  for (std::size_t i = 0; echoed && i < story.sent.size(); ++i) {
    echoed = story.received[i] == upper(story.sent[i]);
  }
  std::printf("stage 2: %zu of %zu lines came back, %s\n", story.received.size(), story.sent.size(),
              echoed ? "in order and upper-cased" : "NOT AS SENT");
  std::printf("exit codes: producer %d, sed %d\n", producer_status, stage2_status);

  bool ok = true;
  if (n != static_cast<std::size_t>(story.lines) || !story.in_order) {
    std::printf("FAILED: expected %d stage-1 lines, numbered in order\n", story.lines);
    ok = false;
  }
  if (!echoed) {
    std::printf("FAILED: stage 2 did not give back every line, in order\n");
    ok = false;
  }
  const double spread2 =
      story.returned.empty() ? 0 : story.returned.back() - story.returned.front();
  if (spread < producer_time / 2 || spread2 < producer_time / 2) {
    std::printf(
        "FAILED: the lines arrived within %.3f s (stage 1) and %.3f s (stage 2), not "
        "spread over the producer's %.3f s\n",
        spread, spread2, producer_time);
    ok = false;
  }
  if (producer_status != 0 || stage2_status != 0) {
    std::printf("FAILED: a child exited with a non-zero code\n");
    ok = false;
  }
  if (ok) {
    std::printf("ok: every line went through both stages in order, as it arrived\n");
  }
  return ok;
}

asyncio::Coro<int> main_coro(Story* story) {
  story->t0 = asyncio::get_running_loop().time();

  // Stage 1: the producer, its stdout a pipe to us.
  std::vector<std::string> producer_args{"-c", kProducerScript, "producer",
                                         std::to_string(story->lines),
                                         std::to_string(story->interval)};
  // (Options set one by one: a designated initializer, {.stdout_ = asyncio::PIPE}, is flagged by
  // g++ 12's -Wextra for the members it leaves out.)
  asyncio::SubprocessOptions producer_options;
  producer_options.stdout_ = asyncio::PIPE;
  asyncio::Process producer =
      co_await asyncio::create_subprocess_exec("sh", producer_args, producer_options);

  // Stage 2: sed, unbuffered (-u), upper-casing each line; its stdin and stdout are pipes.
  std::vector<std::string> sed_args{"-u",
                                    "y/abcdefghijklmnopqrstuvwxyz/ABCDEFGHIJKLMNOPQRSTUVWXYZ/"};
  asyncio::SubprocessOptions sed_options;
  sed_options.stdin_ = asyncio::PIPE;
  sed_options.stdout_ = asyncio::PIPE;
  asyncio::Process stage2 = co_await asyncio::create_subprocess_exec("sed", sed_args, sed_options);
  std::printf("producer (pid %d): %d lines, one every %.3f s; stage 2: sed -u (pid %d)\n",
              producer.pid(), story->lines, story->interval, stage2.pid());
  std::fflush(stdout);

  asyncio::Task<void> collector = asyncio::create_task(collect(story, stage2.stdout_()));
  asyncio::StreamReader from_producer = producer.stdout_();
  asyncio::StreamWriter to_stage2 = stage2.stdin_();
  for (;;) {
    std::string line = co_await from_producer.readline();
    if (line.empty()) break;  // the producer's stdout ended
    line = strip_newline(std::move(line));
    const std::string processed = process(*story, line);
    story->sent.push_back(processed);
    to_stage2.write(processed + "\n");
    co_await to_stage2.drain();  // waits only if sed does not keep up
  }
  to_stage2.close();  // sed sees the end of its input, writes what is left and exits
  co_await to_stage2.wait_closed();
  co_await collector;
  const int producer_status = co_await producer.wait();
  const int stage2_status = co_await stage2.wait();

  co_return report(*story, producer_status, stage2_status) ? 0 : 1;
}

void usage(const char* argv0, std::FILE* to) {
  std::fprintf(to,
               "usage: %s [--lines N] [--interval SECONDS] [--backend epoll|io_uring]\n"
               "  streams a producer's lines through this program and on through sed -u,\n"
               "  line by line as they are produced\n",
               argv0);
}

}  // namespace

int main(int argc, char** argv) {
  asyncio::RunOptions options;
  Story story;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      usage(argv[0], stdout);
      return 0;
    }
    if (std::strcmp(argv[i], "--lines") == 0 && i + 1 < argc) {
      story.lines = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
      story.interval = std::atof(argv[++i]);
    } else if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      const std::string name = argv[++i];
      options.backend = name == "epoll"      ? asyncio::Backend::epoll
                        : name == "io_uring" ? asyncio::Backend::io_uring
                                             : asyncio::Backend::automatic;
    } else {
      usage(argv[0], stderr);
      return 2;
    }
  }
  if (story.lines < 1 || story.interval < 0) {
    usage(argv[0], stderr);
    return 2;
  }
  try {
    return asyncio::run(main_coro(&story), options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 1;
  }
}
