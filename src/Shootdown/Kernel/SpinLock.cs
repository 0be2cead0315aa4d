using Shootdown.Hardware;

namespace Shootdown.Kernel;

/// <summary>
/// A contended kernel spinlock (ticket lock). A step of a CPU computes its whole timeline when the
/// step starts, so a lock is modelled by the hold intervals already booked on it: a CPU asking at
/// time t gets the first gap at or after t long enough for its hold; if it had to wait, it also
/// pays a hand-off (the lock's cache line moves, further across sockets; <see cref="CacheLines"/>). The wait is spinning,
/// which the caller accounts as system time. Intervals that ended before the current event time
/// can no longer matter (events run in time order) and are dropped.
/// </summary>
public sealed class SpinLock(string name, int dataLines = 1, int capacity = 16)
{
    // Booked holds [start, end), sorted and non-overlapping (so sorted by end too), live in
    // [_lo, _hi) of one array of structs (an insertion moves one block of memory, not three). Bookings that ended before the current event time are dropped
    // from the front by moving _lo; a request finds its place by binary search on the ends (many
    // CPUs' steps book into the same stretch of the future, so a linear walk from the last place
    // would cross many bookings), and an insertion shifts the bookings after it (requests come
    // mostly after the others, so few move).
    private Booking[] _b = new Booking[capacity];
    private int _lastCpu = -1;
    private int _lo;
    private int _hi;

    public string Name { get; } = name;

    /// <summary>Cache lines of the data the lock guards that every holder writes (list heads, counters), which come from the previous holder.</summary>
    public int DataLines { get; } = dataLines;

    public long Acquisitions { get; private set; }

    public long Contended { get; private set; }

    public long SpinNs { get; private set; }

    public long HoldNs { get; private set; }

    /// <summary>
    /// Time in the acquisitions themselves, waits aside: the locked instruction
    /// (<see cref="CostModel.LockAcquireNs"/>) and, when the lock was free, its word's line coming
    /// from the last holder (after a wait that transfer is part of the hand-off, in <see cref="SpinNs"/>).
    /// With <see cref="SpinNs"/>, what a profile counts in _raw_spin_lock.
    /// </summary>
    public long AcquireNs { get; private set; }

    /// <summary>
    /// Time holders spent taking the lock word's own cache line back from waiters: the holder's
    /// writes to data that shares the word's line (see <see cref="Hold"/>'s
    /// <c>lockLineWrites</c>), each a transfer while others spin on the word. Part of <see cref="HoldNs"/>.
    /// </summary>
    public long StealNs { get; private set; }

    /// <summary>Most bookings ever outstanding at once.</summary>
    public int MaxLive { get; private set; }

    /// <summary>
    /// Takes the lock at <paramref name="t"/> on CPU <paramref name="cpu"/> and holds it for
    /// <paramref name="holdNs"/> of work on cached data. <paramref name="now"/> is the current event
    /// time (no request can come earlier). Returns the release time: the acquisition
    /// (<see cref="CostModel.LockAcquireNs"/>), the lock word's cache line coming from the previous
    /// holder's CPU, any wait, then the hold — which also pulls the guarded data's hot line (list
    /// head, tree root, counters) from the previous holder. A contended hand-off of a ticket lock
    /// grows with the queue: after a release every waiter re-reads the line, one transfer at a time,
    /// and the next ticket's owner sees its turn on average half-way through, so the hand-off is one
    /// transfer plus half a transfer per other waiter (Boyd-Wickizer et al., "Non-scalable locks
    /// are dangerous", Linux Symposium 2012). <paramref name="spinNs"/> is the time spent waiting for
    /// other holders (0 for an uncontended acquisition).
    /// <para>
    /// <paramref name="lockLineWrites"/> counts the hold's writes to data in the lock word's own
    /// cache line (4.0's <c>struct zone</c> starts a line with <c>lru_lock</c> and puts its LRU
    /// list heads right after it, so without memory cgroups, when those lists are the ones in use,
    /// every page added at a list's head or taken from its tail writes that line;
    /// <see cref="Mm.Memory.LruLockLineWrites"/>). While other CPUs spin on the word — a ticket lock's waiters re-read it
    /// in a loop — each such write finds the line shared with them and must take it back: one
    /// transfer per write, exposed by the locked bit operation each page's list move is followed
    /// by (Linus Torvalds on linux-mm, 12 May 2022: a problem only when the lock is contended and
    /// the writing intense; a368ab67aa55 moved <c>zone->lock</c> off its free lists' line for this).
    /// Whether others spin during this hold is not known when it books (later requests have not
    /// come); as for the hand-off, the queue the requester found stands for the one behind it: a
    /// requester that waited pays a transfer per write, the hand-off's, from the holder ahead.
    /// </para>
    /// </summary>
    public long Hold(long now, long t, int cpu, long holdNs, CacheLines lines, CostModel costs, out long spinNs, int lockLineWrites = 0)
    {
        Booking[] bk = _b;
        while (_lo < _hi && bk[_lo].End <= now)
        {
            _lastCpu = bk[_lo].Cpu;
            _lo++;
        }
        Acquisitions++;
        // The first booking that ends after t.
        int a = _lo, b = _hi;
        while (a < b)
        {
            int mid = (a + b) >>> 1;
            if (bk[mid].End <= t)
            {
                a = mid + 1;
            }
            else
            {
                b = mid;
            }
        }
        int cur = a;
        long line = lines.Transfer(cur > _lo ? bk[cur - 1].Cpu : _lastCpu, cpu);
        long candidate = t + costs.LockAcquireNs + line;
        long hold = holdNs + line * DataLines;
        // Contended: the requester spins behind every booking that ends after t, up to the first
        // gap its hold fits in. The hand-off to it costs one line transfer plus the re-reads of
        // the other spinners: a ticket lock's release invalidates every waiter's copy and they
        // re-read it one at a time, the next owner on average half-way through (Boyd-Wickizer et
        // al. 2012: hand-off time linear in the number of waiters). Who spins at that release is
        // not known yet when this request books (later requests have not come), so the queue the
        // requester found on arrival stands for the queue it leaves behind: in a stationary
        // first-come-first-served queue the two have the same distribution.
        bool waited = false;
        int ahead = 0;
        for (; cur < _hi; cur++)
        {
            if (candidate + hold <= bk[cur].Start)
            {
                break; // fits in the gap before this booking
            }
            ahead++;
            line = lines.Transfer(bk[cur].Cpu, cpu);
            hold = holdNs + line * (DataLines + lockLineWrites);
            candidate = Math.Max(candidate, bk[cur].End + line + line * (ahead - 1) / 2);
            waited = true;
        }
        if (waited)
        {
            Contended++;
            StealNs += lockLineWrites * line;
        }
        HoldNs += hold;
        Insert(cur, candidate, candidate + hold, cpu);
        if (_hi - _lo > MaxLive)
        {
            MaxLive = _hi - _lo;
        }
        // The acquisition itself is not spinning: only waiting for a holder is.
        spinNs = waited ? candidate - t - costs.LockAcquireNs : 0;
        SpinNs += spinNs;
        AcquireNs += waited ? costs.LockAcquireNs : candidate - t;
        return candidate + hold;
    }

    /// <summary>Puts a booking at index <paramref name="at"/>, moving the later ones up.</summary>
    private void Insert(int at, long start, long end, int cpu)
    {
        if (_hi == _b.Length)
        {
            int live = _hi - _lo;
            if (_lo > 0 && live <= _b.Length / 2)
            {
                // Room at the front: move the live bookings down.
                _b.AsSpan(_lo, live).CopyTo(_b);
            }
            else
            {
                var b = new Booking[_b.Length * 2];
                _b.AsSpan(_lo, live).CopyTo(b);
                _b = b;
            }
            at -= _lo;
            _hi = live;
            _lo = 0;
        }
        Booking[] bk = _b;
        int move = _hi - at;
        if (move > 16)
        {
            bk.AsSpan(at, move).CopyTo(bk.AsSpan(at + 1));
        }
        else
        {
            // Most insertions move a few bookings (2.7 on average in the 4-node vanilla run): a
            // loop beats a memmove call there.
            for (int i = _hi; i > at; i--)
            {
                bk[i] = bk[i - 1];
            }
        }
        bk[at] = new Booking(start, end, cpu);
        _hi++;
    }

    /// <summary>One booked hold [Start, End) by a CPU.</summary>
    private readonly record struct Booking(long Start, long End, int Cpu);
}
