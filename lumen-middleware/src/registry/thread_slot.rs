//! Which stripe a thread records on. Each living thread holds a slot, the
//! lowest free number below 64 when it first records, handed back when the
//! thread exits (so threads that come and go, such as a blocking pool's,
//! reuse slots). A route gives each slot below its stripe count a stripe
//! that slot's thread alone writes (an owned stripe: plain adds), and
//! every other thread a shared stripe (atomic adds).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Slots that can own a stripe: as many as the registry's stripe cap.
const OWNABLE: usize = 64;

/// The slots threads hold.
struct SlotPool {
    /// The ownable slots no living thread holds, a bit each.
    free: AtomicU64,
    /// Slots beyond the ownable ones, for when 64 threads hold those.
    next_beyond: AtomicUsize,
}

impl SlotPool {
    const fn new() -> Self {
        Self {
            free: AtomicU64::new(u64::MAX),
            next_beyond: AtomicUsize::new(OWNABLE),
        }
    }

    /// The lowest free ownable slot, else one beyond.
    fn claim(&'static self) -> Slot {
        let mut free = self.free.load(Ordering::Relaxed);
        while free != 0 {
            let lowest = free.trailing_zeros();
            // Acquire: the slot's previous thread's writes happened before.
            match self.free.compare_exchange_weak(
                free,
                free & !(1 << lowest),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Slot {
                        index: lowest as usize,
                        pool: self,
                    };
                }
                Err(now) => free = now,
            }
        }
        Slot {
            index: self.next_beyond.fetch_add(1, Ordering::Relaxed),
            pool: self,
        }
    }
}

static POOL: SlotPool = SlotPool::new();

/// A thread's slot; hands an ownable one back when dropped (the thread exits).
struct Slot {
    index: usize,
    pool: &'static SlotPool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.index < OWNABLE {
            // Release: this thread's writes happen before the next holder's.
            self.pool.free.fetch_or(1 << self.index, Ordering::Release);
        }
    }
}

thread_local! {
    static SLOT: Slot = POOL.claim();
}

/// This thread's slot: below 64 no other living thread holds it; 64 or
/// more (owning nothing) once 64 threads hold those, or while this thread
/// is exiting and its slot is already handed back.
#[inline]
pub(crate) fn thread_slot() -> usize {
    SLOT.try_with(|slot| slot.index).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_lowest_free_and_come_back_when_dropped() {
        static TEST_POOL: SlotPool = SlotPool::new();
        let held: Vec<Slot> = (0..64).map(|_| TEST_POOL.claim()).collect();
        let indices: Vec<usize> = held.iter().map(|s| s.index).collect();
        assert_eq!(indices, (0..64).collect::<Vec<_>>());
        let beyond = [TEST_POOL.claim(), TEST_POOL.claim()];
        assert_eq!([beyond[0].index, beyond[1].index], [64, 65]);
        let mut held = held;
        drop(held.remove(40));
        drop(held.remove(7));
        drop(beyond); // beyond slots are not handed back: nothing to own
        assert_eq!(TEST_POOL.claim().index, 7, "the lowest handed back");
        // The claim above was dropped at once: 7 is free again.
        let (a, b) = (TEST_POOL.claim(), TEST_POOL.claim());
        assert_eq!((a.index, b.index), (7, 40));
        assert_eq!(TEST_POOL.claim().index, 66);
    }

    #[test]
    fn living_threads_hold_distinct_slots() {
        let mine = thread_slot();
        assert_eq!(mine, thread_slot(), "a thread keeps its slot");
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
    }
}
