using Shootdown.Hardware;

namespace Shootdown.Kernel;

/// <summary>
/// A contended kernel spinlock (ticket lock). A step of a CPU computes its whole timeline when the
/// step starts, so a lock is modelled by the hold intervals already booked on it: a CPU asking at
/// time t gets the first gap at or after t long enough for its hold; if it had to wait, it also
/// pays a hand-off (the lock's cache line moves, further across sockets). The wait is spinning,
/// which the caller accounts as system time. Intervals that ended before the current event time
/// can no longer matter (events run in time order) and are dropped.
/// </summary>
public sealed class SpinLock(string name)
{
    // Booked holds [start, end), sorted and non-overlapping, as a doubly linked list over pooled
    // slots. Bookings that ended before the current event time are dropped from the head. A
    // search starts from the slot of the previous booking (requests of one step come in time
    // order, so the right place is usually a few links away) — no array shifting per booking.
    private long[] _start = new long[16];
    private long[] _end = new long[16];
    private int[] _node = new int[16];
    private int[] _next = new int[16];
    private int[] _prev = new int[16];
    private int _free = -1;
    private int _used;
    private int _head = -1;
    private int _tail = -1;
    private int _finger = -1;
    private int _live;

    public string Name { get; } = name;

    public long Acquisitions { get; private set; }

    public long Contended { get; private set; }

    public long SpinNs { get; private set; }

    public long HoldNs { get; private set; }

    /// <summary>Most bookings ever outstanding at once.</summary>
    public int MaxLive { get; private set; }

    /// <summary>
    /// Takes the lock at <paramref name="t"/> on a CPU of <paramref name="node"/> and holds it for
    /// <paramref name="holdNs"/>. <paramref name="now"/> is the current event time (no request can
    /// come earlier). Returns the release time: the acquisition (<see cref="CostModel.LockAcquireNs"/>),
    /// any wait, then the hold. <paramref name="spinNs"/> is the time spent waiting for other holders
    /// (0 for an uncontended acquisition).
    /// </summary>
    public long Hold(long now, long t, int node, long holdNs, CostModel costs, out long spinNs)
    {
        while (_head >= 0 && _end[_head] <= now)
        {
            int dead = _head;
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
        HoldNs += holdNs;
        long candidate = t + costs.LockAcquireNs;
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
        bool waited = false;
        int queued = -1;
        for (; cur >= 0; cur = _next[cur])
        {
            if (candidate + holdNs <= _start[cur])
            {
                break; // fits in the gap before this booking
            }
            if (queued < 0)
            {
                // Holders and waiters booked from here on (counted once, bounded).
                queued = 0;
                for (int q = cur; q >= 0 && queued < 64; q = _next[q])
                {
                    queued++;
                }
            }
            // Ticket-lock hand-off: the line moves to the next holder, and every waiter's
            // re-read of it slows the transfer, so hand-off time grows with the queue
            // (Boyd-Wickizer et al., "Non-scalable locks are dangerous", OLS 2012).
            long handoff = (_node[cur] == node ? costs.LockHandoffSameNodeNs : costs.LockHandoffRemoteNodeNs)
                + costs.LockHandoffPerWaiterNs * queued;
            candidate = Math.Max(candidate, _end[cur] + handoff);
            waited = true;
            queued--;
        }
        if (waited)
        {
            Contended++;
        }
        _finger = InsertBefore(cur, candidate, candidate + holdNs, node);
        if (++_live > MaxLive)
        {
            MaxLive = _live;
        }
        // The acquisition itself (LockAcquireNs) is not spinning: only waiting for a holder is.
        spinNs = waited ? candidate - t - costs.LockAcquireNs : 0;
        SpinNs += spinNs;
        return candidate + holdNs;
    }

    /// <summary>Links a new booking before slot <paramref name="at"/> (-1 = at the tail).</summary>
    private int InsertBefore(int at, long start, long end, int node)
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
                Array.Resize(ref _node, n);
                Array.Resize(ref _next, n);
                Array.Resize(ref _prev, n);
            }
            slot = _used++;
        }
        _start[slot] = start;
        _end[slot] = end;
        _node[slot] = node;
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
