// Internal: the loop's ready queue, a growable ring of Runnable pointers (FIFO).
// Pushing never allocates once the ring has grown to the workload's high-water mark.
#pragma once

#include <cstddef>
#include <memory>

#include "asyncio/detail/runnable.hpp"

namespace asyncio::detail {

class ReadyQueue {
 public:
  ReadyQueue() : buf_(std::make_unique<Runnable*[]>(kInitial)), mask_(kInitial - 1) {}

  void push(Runnable* r) {
    if (size_ > mask_) grow();
    buf_[(head_ + size_) & mask_] = r;
    ++size_;
  }
  Runnable* pop() noexcept {
    Runnable* r = buf_[head_];
    head_ = (head_ + 1) & mask_;
    --size_;
    return r;
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

 private:
  static constexpr std::size_t kInitial = 256;
  void grow() {
    const std::size_t cap = (mask_ + 1) * 2;
    auto nb = std::make_unique<Runnable*[]>(cap);
    for (std::size_t i = 0; i < size_; ++i) nb[i] = buf_[(head_ + i) & mask_];
    buf_ = std::move(nb);
    head_ = 0;
    mask_ = cap - 1;
  }

  std::unique_ptr<Runnable*[]> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t mask_;
};

}  // namespace asyncio::detail
