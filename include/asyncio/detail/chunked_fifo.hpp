// Internal: a FIFO of small trivially copyable entries stored in 4 KiB chunks, for the loop's
// ready queue and the timer heap's sorted run.
//
// Unlike a growable ring or vector, it never copies its contents and never holds two buffers
// at once: a chunk is allocated when the back reaches the end of the last one and given back
// when the front leaves it. A queue that swells to 100,000 entries and drains again (100,000
// tasks created at once, or waking at once) costs its entries' bytes, not twice that, and the
// chunks it frees serve the next queue that grows. One emptied chunk is kept as a spare, so a
// queue that stays small allocates nothing in steady state.
#pragma once

#include <cassert>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace asyncio::detail {

template <class T>
class ChunkedFifo {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

 public:
  static constexpr std::size_t kChunkBytes = 4096;
  static constexpr std::size_t kPerChunk = kChunkBytes / sizeof(T);
  static_assert(kPerChunk >= 2);

  ChunkedFifo() = default;
  ChunkedFifo(const ChunkedFifo&) = delete;
  ChunkedFifo& operator=(const ChunkedFifo&) = delete;
  ~ChunkedFifo() {
    for (std::size_t i = first_; i < chunks_.size(); ++i) free_chunk(chunks_[i]);
    free_chunk(spare_);
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

  void push_back(const T& v) {
    const std::size_t k = head_ + size_;
    if (first_ + k / kPerChunk == chunks_.size()) add_chunk();  // may renumber the table
    chunks_[first_ + k / kPerChunk][k % kPerChunk] = v;
    ++size_;
  }
  [[nodiscard]] T& front() noexcept {
    assert(size_ > 0);
    return chunks_[first_][head_];
  }
  [[nodiscard]] const T& front() const noexcept {
    assert(size_ > 0);
    return chunks_[first_][head_];
  }
  void pop_front() noexcept {
    assert(size_ > 0);
    --size_;
    if (++head_ == kPerChunk) {
      head_ = 0;
      release_chunk(chunks_[first_]);
      chunks_[first_++] = nullptr;
      compact();
    } else if (size_ == 0) {
      head_ = 0;  // empty: start over at the front of the chunk already held
    }
  }
  /// The entry `i` places behind the front.
  [[nodiscard]] T& operator[](std::size_t i) noexcept {
    assert(i < size_);
    const std::size_t k = head_ + i;
    return chunks_[first_ + k / kPerChunk][k % kPerChunk];
  }
  /// Forgets every entry; keeps one chunk for what comes next.
  void clear() noexcept {
    while (chunks_.size() > first_ + 1) {
      release_chunk(chunks_.back());
      chunks_.pop_back();
    }
    head_ = 0;
    size_ = 0;
  }

 private:
  static T* new_chunk() { return static_cast<T*>(::operator new(kChunkBytes)); }
  static void free_chunk(T* c) noexcept { ::operator delete(c); }
  void add_chunk() {
    if (first_ > 0 && first_ == chunks_.size()) {  // every slot before is spent: reuse the table
      chunks_.clear();
      first_ = 0;
    }
    chunks_.reserve(chunks_.size() + 1);  // may throw before anything changes
    T* c = spare_ != nullptr ? std::exchange(spare_, nullptr) : new_chunk();
    chunks_.push_back(c);
  }
  void release_chunk(T* c) noexcept {
    if (spare_ == nullptr) {
      spare_ = c;
    } else {
      free_chunk(c);
    }
  }
  /// Drops the table's spent prefix now and then (it is one pointer per chunk).
  void compact() noexcept {
    if (first_ >= 64 && first_ * 2 >= chunks_.size()) {
      chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(first_));
      first_ = 0;
    }
  }

  std::vector<T*> chunks_;  // chunks_[first_] holds the front; earlier slots are spent
  std::size_t first_ = 0;
  std::size_t head_ = 0;  // the front's offset in chunks_[first_]
  std::size_t size_ = 0;
  T* spare_ = nullptr;
};

}  // namespace asyncio::detail
