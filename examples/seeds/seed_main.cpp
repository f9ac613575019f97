// seed_<name>: one seed example as a stand-alone program, printing exactly what the Python
// script prints (with "+1.00s" where the article prints a wall-clock time).
//
//   seed_say_after_tasks             real time, plain lines
//   seed_say_after_tasks --times     each line prefixed with its loop time: [+1.00s] hello
//   seed_say_after_tasks --virtual   under virtual time: sleeps return at once
#include <iostream>
#include <string_view>

#include "seeds.hpp"

int main(int argc, char** argv) {
  asyncio::RunOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--virtual") {
      options.virtual_time = true;
    } else if (arg == "--times") {
      seeds::set_sink([](double t, std::string_view line) {
        std::cout << '[' << seeds::format_time(t) << "] " << line << '\n' << std::flush;
      });
    } else {
      std::cerr << "usage: " << argv[0] << " [--times] [--virtual]\n";
      return 2;
    }
  }
  if (seeds::registry().size() != 1) {
    std::cerr << argv[0] << ": expected exactly one seed, found " << seeds::registry().size()
              << '\n';
    return 1;
  }
  seeds::run(seeds::registry().front(), options);
  return 0;
}
