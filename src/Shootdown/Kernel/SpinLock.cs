using Shootdown.Hardware;

namespace Shootdown.Kernel;

/// <summary>
/// A contended kernel spinlock (ticket lock), modelled as a FIFO reservation: a CPU that asks for
/// the lock at time t gets it at max(t, release time of the previous holder) plus a hand-off cost
/// when it had to wait (the lock's cache line moves, further across sockets). The waiting time is
/// spinning, which the caller accounts as system time. Requests are served in event order, which
/// is time order within the simulator, so no event is needed per acquisition.
/// </summary>
public sealed class SpinLock(string name)
{
    private long _freeAt;
    private int _lastNode = -1;

    public string Name { get; } = name;

    public long Acquisitions { get; private set; }

    public long Contended { get; private set; }

    public long SpinNs { get; private set; }

    /// <summary>
    /// Takes the lock at <paramref name="t"/> on a CPU of <paramref name="node"/> and holds it for
    /// <paramref name="holdNs"/>. Returns the time the lock is released; <paramref name="spinNs"/>
    /// is the time spent spinning before getting it.
    /// </summary>
    public long Hold(long t, int node, long holdNs, CostModel costs, out long spinNs)
    {
        long start;
        Acquisitions++;
        if (_freeAt > t)
        {
            Contended++;
            start = _freeAt + (node == _lastNode ? costs.LockHandoffSameNodeNs : costs.LockHandoffRemoteNodeNs);
        }
        else
        {
            start = t + costs.LockAcquireNs;
        }
        spinNs = start - t;
        SpinNs += spinNs;
        long end = start + holdNs;
        _freeAt = end;
        _lastNode = node;
        return end;
    }
}
