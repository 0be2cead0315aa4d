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
    private long[] _start = new long[8];
    private long[] _end = new long[8];
    private int[] _node = new int[8];
    private int _count;

    public string Name { get; } = name;

    public long Acquisitions { get; private set; }

    public long Contended { get; private set; }

    public long SpinNs { get; private set; }

    public long HoldNs { get; private set; }

    /// <summary>
    /// Takes the lock at <paramref name="t"/> on a CPU of <paramref name="node"/> and holds it for
    /// <paramref name="holdNs"/>. <paramref name="now"/> is the current event time (no request can
    /// come earlier). Returns the release time; <paramref name="spinNs"/> is the time spent waiting.
    /// </summary>
    public long Hold(long now, long t, int node, long holdNs, CostModel costs, out long spinNs)
    {
        Prune(now);
        Acquisitions++;
        HoldNs += holdNs;
        long candidate = t + costs.LockAcquireNs;
        bool waited = false;
        int pos = 0;
        for (; pos < _count; pos++)
        {
            if (candidate + holdNs <= _start[pos])
            {
                break; // fits in the gap before this booking
            }
            if (_end[pos] > candidate - (waited ? 0 : costs.LockAcquireNs))
            {
                // Ticket-lock hand-off: the line moves to the next holder, and every waiter's
                // re-read of it slows the transfer, so hand-off time grows with the queue
                // (Boyd-Wickizer et al., "Non-scalable locks are dangerous", OLS 2012).
                long handoff = (_node[pos] == node ? costs.LockHandoffSameNodeNs : costs.LockHandoffRemoteNodeNs)
                    + costs.LockHandoffPerWaiterNs * (_count - pos);
                candidate = Math.Max(candidate, _end[pos] + handoff);
                waited = true;
            }
        }
        if (waited)
        {
            Contended++;
        }
        Insert(pos, candidate, candidate + holdNs, node);
        spinNs = candidate - t;
        SpinNs += spinNs;
        return candidate + holdNs;
    }

    private void Prune(long now)
    {
        int keep = 0;
        for (int i = 0; i < _count; i++)
        {
            if (_end[i] > now)
            {
                _start[keep] = _start[i];
                _end[keep] = _end[i];
                _node[keep] = _node[i];
                keep++;
            }
        }
        _count = keep;
    }

    private void Insert(int pos, long start, long end, int node)
    {
        if (_count == _start.Length)
        {
            Array.Resize(ref _start, _count * 2);
            Array.Resize(ref _end, _count * 2);
            Array.Resize(ref _node, _count * 2);
        }
        Array.Copy(_start, pos, _start, pos + 1, _count - pos);
        Array.Copy(_end, pos, _end, pos + 1, _count - pos);
        Array.Copy(_node, pos, _node, pos + 1, _count - pos);
        _start[pos] = start;
        _end[pos] = end;
        _node[pos] = node;
        _count++;
    }
}
