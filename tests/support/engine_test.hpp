// engine_test.hpp - running a test on both I/O engines (header-only).
//
//   TEST_P suites parametrized over asyncio::Backend (epoll, io_uring) use:
//   engine_name(b)            "epoll" / "io_uring" / "automatic"
//   param_name                the INSTANTIATE_TEST_SUITE_P name generator (engine names)
//   io_uring_refused()        why io_uring_setup fails here (asked of the kernel directly), or
//                             nullopt when it works: such tests skip on io_uring then
//   running_backend()         the engine the running loop runs
//   bounded_on_engine(c, b, s) a Coro: `c` under wait_for(s seconds), checking it runs on `b`
//   PrintTo(Backend)          GoogleTest prints the engine by name in failure messages
#pragma once

#include <cerrno>
#include <cstring>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "unix/loop_io.hpp"

namespace asyncio {
inline void PrintTo(Backend b, std::ostream* os) {
  *os << (b == Backend::epoll ? "epoll" : b == Backend::io_uring ? "io_uring" : "automatic");
}
}  // namespace asyncio

namespace asyncio_test {

inline const char* engine_name(asyncio::Backend b) {
  using asyncio::Backend;
  return b == Backend::epoll ? "epoll" : b == Backend::io_uring ? "io_uring" : "automatic";
}

inline std::string param_name(const ::testing::TestParamInfo<asyncio::Backend>& info) {
  return engine_name(info.param);
}

/// Asks the kernel directly (not through the library) whether io_uring_setup works here; the
/// reason when it does not (an old kernel, kernel.io_uring_disabled, a seccomp profile).
inline std::optional<std::string> io_uring_refused() {
  io_uring_params params{};
  const long fd = ::syscall(__NR_io_uring_setup, 4, &params);
  if (fd < 0) return std::string("io_uring_setup: ") + std::strerror(errno);
  ::close(static_cast<int>(fd));
  return std::nullopt;
}

/// The engine the running loop runs.
inline asyncio::Backend running_backend() {
  return asyncio::detail::io_of(asyncio::get_running_loop()).backend();
}

/// `main` under wait_for(`bound` seconds), so a hang fails the test instead of the run, after
/// checking that the running loop runs engine `want`. For asyncio::run(..., {.backend = want}).
template <class T>
asyncio::Coro<T> bounded_on_engine(asyncio::Coro<T> main, asyncio::Backend want, double bound) {
  EXPECT_EQ(running_backend(), want);
  if constexpr (std::is_void_v<T>) {
    co_await asyncio::wait_for(std::move(main), bound);
  } else {
    co_return co_await asyncio::wait_for(std::move(main), bound);
  }
}

}  // namespace asyncio_test
