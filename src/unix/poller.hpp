// The I/O engine behind a loop. Readiness-based engines (epoll) report which fds are ready;
// a completion-based engine (io_uring, a later backend) implements the same interface for
// readiness (POLL_ADD) and will carry operations (recv/send/accept/connect) as submissions.
// Code above this interface never sees which engine runs: see docs/design/loop.md.
#pragma once

#include <memory>
#include <vector>

namespace asyncio::detail {

struct IoEvent {
  int fd;
  bool readable;
  bool writable;
};

class Poller {
 public:
  Poller() = default;
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;
  virtual ~Poller() = default;
  /// Sets the interest for `fd` (both false: stop watching it).
  virtual void update(int fd, bool read, bool write) = 0;
  /// Waits up to timeout_ms (-1: forever) and appends ready fds to `out`. Returns true when
  /// woken through the wake-up eventfd (which it empties).
  virtual bool wait(int timeout_ms, std::vector<IoEvent>& out) = 0;
};

/// An epoll engine that also watches `wakefd`, an eventfd it does not own (the loop's
/// PostQueue does: other threads may still signal it after the poller is gone).
std::unique_ptr<Poller> make_epoll_poller(int wakefd);

}  // namespace asyncio::detail
