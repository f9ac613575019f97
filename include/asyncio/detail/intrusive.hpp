// Internal: an intrusive reference-counted pointer and a doubly linked list hook.
#pragma once

#include <cstddef>
#include <utility>

namespace asyncio::detail {

/// A strong reference to an object with add_ref()/release() members.
template <class T>
class Ref {
 public:
  Ref() noexcept = default;
  /// Takes a new reference to `p` (which may be null).
  explicit Ref(T* p) noexcept : p_(p) {
    if (p_) p_->add_ref();
  }
  /// Adopts a reference the caller already owns.
  static Ref adopt(T* p) noexcept {
    Ref r;
    r.p_ = p;
    return r;
  }
  Ref(const Ref& o) noexcept : Ref(o.p_) {}
  Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  template <class U>
  Ref(const Ref<U>& o) noexcept : Ref(static_cast<T*>(o.get())) {}  // NOLINT: upcast
  Ref& operator=(Ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~Ref() { reset(); }

  void reset() noexcept {
    if (T* p = std::exchange(p_, nullptr)) p->release();
  }
  /// Gives up ownership without releasing.
  T* leak() noexcept { return std::exchange(p_, nullptr); }
  T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  friend bool operator==(const Ref& a, const Ref& b) noexcept { return a.p_ == b.p_; }

 private:
  T* p_ = nullptr;
};

/// Hook for an intrusive doubly linked list; the owner unlinks itself.
struct ListHook {
  ListHook* prev = nullptr;
  ListHook* next = nullptr;
  [[nodiscard]] bool linked() const noexcept { return prev != nullptr; }
};

/// A circular intrusive list with a sentinel. Elements derive from ListHook.
/// FIFO: push_back then iterate from the front.
class IntrusiveList {
 public:
  IntrusiveList() noexcept { head_.prev = head_.next = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  [[nodiscard]] bool empty() const noexcept { return head_.next == &head_; }
  void push_back(ListHook* n) noexcept {
    n->prev = head_.prev;
    n->next = &head_;
    head_.prev->next = n;
    head_.prev = n;
  }
  static void unlink(ListHook* n) noexcept {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = nullptr;
  }
  ListHook* front() const noexcept { return empty() ? nullptr : head_.next; }
  ListHook* pop_front() noexcept {  // NOLINT(readability-make-member-function-const): unlinks
    ListHook* n = front();
    if (n) unlink(n);
    return n;
  }
  /// Iteration: for (auto* h = l.first(); h != l.end(); h = h->next)
  ListHook* first() const noexcept { return head_.next; }
  const ListHook* end() const noexcept { return &head_; }
  /// Moves every element of `o` to the back of this list.
  void splice_back(IntrusiveList& o) noexcept {
    if (o.empty()) return;
    ListHook* f = o.head_.next;
    ListHook* l = o.head_.prev;
    f->prev = head_.prev;
    head_.prev->next = f;
    l->next = &head_;
    head_.prev = l;
    o.head_.prev = o.head_.next = &o.head_;
  }
  [[nodiscard]] std::size_t size() const noexcept {
    std::size_t n = 0;
    for (auto* h = first(); h != end(); h = h->next) ++n;
    return n;
  }
  /// Moves every element of `o` (a SlimList) to the back of this list.
  void splice_back(class SlimList& o) noexcept;

 private:
  ListHook head_;
};

/// A circular list without a sentinel, reached through one pointer to its first element (the
/// last is first->prev): 8 bytes where IntrusiveList takes 16, for the lists every future
/// carries. An element must be removed through its list (remove()), which may have to move
/// the first-element pointer.
class SlimList {
 public:
  SlimList() noexcept = default;
  SlimList(const SlimList&) = delete;
  SlimList& operator=(const SlimList&) = delete;

  [[nodiscard]] bool empty() const noexcept { return first_ == nullptr; }
  void push_back(ListHook* n) noexcept {
    if (first_ == nullptr) {
      n->prev = n->next = n;
      first_ = n;
      return;
    }
    ListHook* last = first_->prev;
    n->prev = last;
    n->next = first_;
    last->next = n;
    first_->prev = n;
  }
  /// Unlinks `n`, an element of this list.
  void remove(ListHook* n) noexcept {
    if (n->next == n) {
      first_ = nullptr;
    } else {
      n->prev->next = n->next;
      n->next->prev = n->prev;
      if (first_ == n) first_ = n->next;
    }
    n->prev = n->next = nullptr;
  }
  ListHook* pop_front() noexcept {
    ListHook* n = first_;
    if (n != nullptr) remove(n);
    return n;
  }
  /// Iteration: for (auto* h = l.first(); h != nullptr; h = l.next(h))
  [[nodiscard]] ListHook* first() const noexcept { return first_; }
  [[nodiscard]] ListHook* next(const ListHook* h) const noexcept {
    return h->next == first_ ? nullptr : h->next;
  }
  [[nodiscard]] std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const ListHook* h = first(); h != nullptr; h = next(h)) ++n;
    return n;
  }

 private:
  friend class IntrusiveList;
  ListHook* first_ = nullptr;
};

inline void IntrusiveList::splice_back(SlimList& o) noexcept {
  if (o.empty()) return;
  ListHook* f = o.first_;
  ListHook* l = f->prev;
  f->prev = head_.prev;
  head_.prev->next = f;
  l->next = &head_;
  head_.prev = l;
  o.first_ = nullptr;
}

}  // namespace asyncio::detail
