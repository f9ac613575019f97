// detail/spin.hpp - a short bounded spin before a thread goes to sleep (internal).
#pragma once

#include <chrono>

namespace asyncio::detail {

/// How long a thread spins for work that is about to come before it sleeps in the kernel:
/// about the cost of being woken up again (a futex or eventfd wake-up and the context switch,
/// several microseconds on each side).
inline constexpr std::chrono::microseconds kSpinBeforeSleep{20};

/// A pause instruction: tells the CPU this is a spin-wait loop.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield");
#endif
}

/// Spins until `ready()` or for `limit`; returns ready()'s last value.
template <class Ready>
bool spin_until(Ready ready, std::chrono::microseconds limit = kSpinBeforeSleep) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (ready()) return true;
    for (int i = 0; i < 32; ++i) cpu_relax();
    if (std::chrono::steady_clock::now() >= until) return ready();
  }
}

}  // namespace asyncio::detail
