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
public sealed class SpinLock(string name, int dataLines = 1)
{
    // Booked holds [start, end), sorted and non-overlapping, as a doubly linked list over pooled
    // slots. Bookings that ended before the current event time are dropped from the head. A
    // search starts from the slot of the previous booking (requests of one step come in time
    // order, so the right place is usually a few links away) — no array shifting per booking.
    private long[] _start = new long[16];
    private long[] _end = new long[16];
    private int[] _cpu = new int[16];
    private int _lastCpu = -1;
    private int[] _next = new int[16];
    private int[] _prev = new int[16];
    private int _free = -1;
    private int _used;
    private int _head = -1;
    private int _tail = -1;
    private int _finger = -1;
    private int _live;

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
        while (_head >= 0 && _end[_head] <= now)
        {
            int dead = _head;
            _lastCpu = _cpu[dead];
            _head = _next[dead];
            if (_head >= 0)
            {
                _prev[_head] = -1;
            }
            else
            {
                _tail = -1;
            }
            if (_finger == dead)
            {
                _finger = _head;
            }
            _next[dead] = _free;
            _free = dead;
            _live--;
        }
        Acquisitions++;
        // Find the first booking that ends after t, starting from the finger.
        int cur = _finger >= 0 ? _finger : _head;
        if (cur >= 0)
        {
            while (_prev[cur] >= 0 && _end[_prev[cur]] > t)
            {
                cur = _prev[cur];
            }
            while (cur >= 0 && _end[cur] <= t)
            {
                cur = _next[cur];
            }
        }
        int before = cur >= 0 ? _prev[cur] : _tail;
        long line = lines.Transfer(before >= 0 ? _cpu[before] : _lastCpu, cpu);
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
        for (; cur >= 0; cur = _next[cur])
        {
            if (candidate + hold <= _start[cur])
            {
                break; // fits in the gap before this booking
            }
            ahead++;
            line = lines.Transfer(_cpu[cur], cpu);
            hold = holdNs + line * DataLines;
            candidate = Math.Max(candidate, _end[cur] + line + line * (ahead - 1) / 2);
            waited = true;
        }
        if (waited)
        {
            Contended++;
        }
        HoldNs += hold;
        _finger = InsertBefore(cur, candidate, candidate + hold, cpu);
        if (++_live > MaxLive)
        {
            MaxLive = _live;
        }
        // The acquisition itself is not spinning: only waiting for a holder is.
        spinNs = waited ? candidate - t - costs.LockAcquireNs : 0;
        SpinNs += spinNs;
        return candidate + hold;
    }

    /// <summary>Links a new booking before slot <paramref name="at"/> (-1 = at the tail).</summary>
    private int InsertBefore(int at, long start, long end, int cpu)
    {
        int slot;
        if (_free >= 0)
        {
            slot = _free;
            _free = _next[slot];
        }
        else
        {
            if (_used == _start.Length)
            {
                int n = _used * 2;
                Array.Resize(ref _start, n);
                Array.Resize(ref _end, n);
                Array.Resize(ref _cpu, n);
                Array.Resize(ref _next, n);
                Array.Resize(ref _prev, n);
            }
            slot = _used++;
        }
        _start[slot] = start;
        _end[slot] = end;
        _cpu[slot] = cpu;
        int before = at >= 0 ? _prev[at] : _tail;
        _prev[slot] = before;
        _next[slot] = at;
        if (before >= 0)
        {
            _next[before] = slot;
        }
        else
        {
            _head = slot;
        }
        if (at >= 0)
        {
            _prev[at] = slot;
        }
        else
        {
            _tail = slot;
        }
        return slot;
    }
}
