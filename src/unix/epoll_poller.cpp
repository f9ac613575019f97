// The epoll engine: level-triggered, plus the loop's eventfd for cross-thread wake-ups.
#include <array>
#include <cerrno>
#include <memory>
#include <system_error>
#include <vector>

#include <sys/epoll.h>

#include "sys/sys.hpp"
#include "unix/poller.hpp"

namespace asyncio::detail {
namespace {

class EpollPoller final : public Poller {
 public:
  explicit EpollPoller(int wakefd) : epfd_(sys::epoll_create()), wakefd_(wakefd) {
    try {
      sys::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, EPOLLIN);
    } catch (...) {
      sys::close(epfd_);
      throw;
    }
  }
  ~EpollPoller() override { sys::close(epfd_); }

  void update(int fd, bool read, bool write) override {
    const auto index = static_cast<std::size_t>(fd);
    if (index >= interest_.size()) interest_.resize(index + 1, 0);
    const std::uint32_t events = (read ? EPOLLIN : 0U) | (write ? EPOLLOUT : 0U);
    const std::uint32_t old = interest_[index];
    if (events == old) return;
    if (events == 0) {
      // The fd may already be closed (EBADF) or re-created: nothing left to remove then.
      try {
        sys::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, 0);
      } catch (const std::system_error& e) {
        if (e.code().value() != EBADF && e.code().value() != ENOENT) throw;
      }
    } else {
      sys::epoll_ctl(epfd_, old == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, events);
    }
    interest_[index] = events;
  }

  bool wait(int timeout_ms, std::vector<IoEvent>& out) override {
    const int n =
        sys::epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = events_[static_cast<std::size_t>(i)];
      if (ev.data.fd == wakefd_) {
        sys::eventfd_drain(wakefd_);
        woken = true;
        continue;
      }
      // As Python's selectors: an error or hang-up wakes both directions.
      const bool err = (ev.events & (EPOLLERR | EPOLLHUP)) != 0;
      out.push_back(
          {ev.data.fd, (ev.events & EPOLLIN) != 0 || err, (ev.events & EPOLLOUT) != 0 || err});
    }
    return woken;
  }

 private:
  int epfd_;
  int wakefd_;  // owned by the loop's PostQueue
  std::vector<std::uint32_t> interest_;
  std::array<epoll_event, 256> events_{};
};

}  // namespace

std::unique_ptr<Poller> make_epoll_poller(int wakefd) {
  return std::make_unique<EpollPoller>(wakefd);
}

}  // namespace asyncio::detail
