//! Which stripe a thread records on. Each living thread holds a slot, the
//! lowest free number below 64 when it first records, handed back when the
//! thread exits (so threads that come and go, such as a blocking pool's,
//! reuse slots). A route gives each slot below its stripe count a stripe
//! that slot's thread alone writes (an owned stripe: plain adds), and
//! every other thread a shared stripe (atomic adds).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Slots that can own a stripe: as many as the registry's stripe cap.
const OWNABLE: usize = 64;

/// The ownable slots no living thread holds, a bit each.
static FREE: AtomicU64 = AtomicU64::new(u64::MAX);
/// Slots beyond the ownable ones, when 64 threads hold those.
static NEXT_BEYOND: AtomicUsize = AtomicUsize::new(OWNABLE);

/// A thread's slot; hands an ownable one back when the thread exits.
struct Slot(usize);

impl Slot {
    fn claim() -> Self {
        let mut free = FREE.load(Ordering::Relaxed);
        while free != 0 {
            let lowest = free.trailing_zeros();
            // Acquire: the slot's previous thread's writes happened before.
            match FREE.compare_exchange_weak(
                free,
                free & !(1 << lowest),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Self(lowest as usize),
                Err(now) => free = now,
            }
        }
        Self(NEXT_BEYOND.fetch_add(1, Ordering::Relaxed))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.0 < OWNABLE {
            // Release: this thread's writes happen before the next holder's.
            FREE.fetch_or(1 << self.0, Ordering::Release);
        }
    }
}

thread_local! {
    static SLOT: Slot = Slot::claim();
}

/// This thread's slot: below 64 no other living thread holds it; 64 or
/// more (shared with nobody's ownership) once 64 threads hold those, or
/// while this thread is exiting and its slot is already handed back.
#[inline]
pub(crate) fn thread_slot() -> usize {
    SLOT.try_with(|slot| slot.0).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn living_threads_hold_distinct_slots_and_exited_ones_hand_them_back() {
        let mine = thread_slot();
        assert_eq!(mine, thread_slot(), "a thread keeps its slot");
        // Eight threads alive at once hold eight distinct slots.
        let barrier = std::sync::Barrier::new(8);
        let held: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let slot = thread_slot();
                        barrier.wait(); // all eight hold theirs now
                        slot
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("slot thread"))
                .collect()
        });
        let distinct: std::collections::HashSet<_> = held.iter().chain([&mine]).collect();
        assert_eq!(distinct.len(), 9, "{held:?} and {mine}");
        // They exited: their ownable slots are free again.
        let free = FREE.load(Ordering::Acquire);
        for slot in held.iter().filter(|s| **s < OWNABLE) {
            assert_ne!(free & (1 << slot), 0, "slot {slot} handed back");
        }
    }
}
