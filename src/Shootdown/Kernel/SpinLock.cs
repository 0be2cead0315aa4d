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
    // [_lo, _hi) of parallel arrays. Bookings that ended before the current event time are dropped
    // from the front by moving _lo; a request finds its place by binary search on the ends (many
    // CPUs' steps book into the same stretch of the future, so a linear walk from the last place
    // would cross many bookings), and an insertion shifts the bookings after it (requests come
    // mostly after the others, so few move).
    private long[] _start = new long[capacity];
    private long[] _end = new long[capacity];
    private int[] _cpu = new int[capacity];
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
    /// </summary>
    public long Hold(long now, long t, int cpu, long holdNs, CacheLines lines, CostModel costs, out long spinNs)
    {
        long[] ends = _end;
        while (_lo < _hi && ends[_lo] <= now)
        {
            _lastCpu = _cpu[_lo];
            _lo++;
        }
        Acquisitions++;
        // The first booking that ends after t.
        int a = _lo, b = _hi;
        while (a < b)
        {
            int mid = (a + b) >>> 1;
            if (ends[mid] <= t)
            {
                a = mid + 1;
            }
            else
            {
                b = mid;
            }
        }
        int cur = a;
        long line = lines.Transfer(cur > _lo ? _cpu[cur - 1] : _lastCpu, cpu);
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
            if (candidate + hold <= _start[cur])
            {
                break; // fits in the gap before this booking
            }
            ahead++;
            line = lines.Transfer(_cpu[cur], cpu);
            hold = holdNs + line * DataLines;
            candidate = Math.Max(candidate, ends[cur] + line + line * (ahead - 1) / 2);
            waited = true;
        }
        if (waited)
        {
            Contended++;
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
        return candidate + hold;
    }

    /// <summary>Puts a booking at index <paramref name="at"/>, moving the later ones up.</summary>
    private void Insert(int at, long start, long end, int cpu)
    {
        if (_hi == _start.Length)
        {
            int live = _hi - _lo;
            if (_lo > 0 && live <= _start.Length / 2)
            {
                // Room at the front: move the live bookings down.
                Array.Copy(_start, _lo, _start, 0, live);
                Array.Copy(_end, _lo, _end, 0, live);
                Array.Copy(_cpu, _lo, _cpu, 0, live);
            }
            else
            {
                int n = _start.Length * 2;
                var s = new long[n];
                var e = new long[n];
                var c = new int[n];
                Array.Copy(_start, _lo, s, 0, live);
                Array.Copy(_end, _lo, e, 0, live);
                Array.Copy(_cpu, _lo, c, 0, live);
                _start = s;
                _end = e;
                _cpu = c;
            }
            at -= _lo;
            _hi = live;
            _lo = 0;
        }
        int move = _hi - at;
        if (move > 0)
        {
            Array.Copy(_start, at, _start, at + 1, move);
            Array.Copy(_end, at, _end, at + 1, move);
            Array.Copy(_cpu, at, _cpu, at + 1, move);
        }
        _start[at] = start;
        _end[at] = end;
        _cpu[at] = cpu;
        _hi++;
    }
}
