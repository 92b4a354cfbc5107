//! The global allocator: the system allocator plus per-thread byte counters (INFO used_memory).
//!
//! Each executor thread gets its own counter slot, written only by that
//! thread with plain load/store (no locked instruction on the hot path);
//! other threads share slot 0 with atomic adds. Memory freed by another
//! thread than the one that allocated it is subtracted there, so single
//! slots can go negative; the sum is exact.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

const SLOTS: usize = 1025;

#[repr(align(64))]
struct Slot(AtomicIsize);

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: Slot = Slot(AtomicIsize::new(0));
static COUNTERS: [Slot; SLOTS] = [ZERO; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static MY_SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Gives the calling thread its own counter slot (call once per executor thread).
pub fn register_thread() {
    let s = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
    if s < SLOTS {
        MY_SLOT.with(|m| m.set(s));
    }
}

#[inline]
fn add(delta: isize) {
    let slot = MY_SLOT.try_with(|m| m.get()).unwrap_or(0);
    let c = &COUNTERS[slot].0;
    if slot == 0 {
        c.fetch_add(delta, Ordering::Relaxed);
    } else {
        // Single writer: this thread owns the slot.
        c.store(c.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
    }
}

/// Bytes currently allocated by the whole process.
pub fn allocated() -> usize {
    COUNTERS
        .iter()
        .map(|c| c.0.load(Ordering::Relaxed))
        .sum::<isize>()
        .max(0) as usize
}

/// The counting allocator.
pub struct Counting;

// SAFETY: every method forwards to System with the caller's arguments
// unchanged, so System's guarantees hold; the counters have no effect on
// the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl's comment).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
