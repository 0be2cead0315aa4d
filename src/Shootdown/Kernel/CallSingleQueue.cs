namespace Shootdown.Kernel;

/// <summary>
/// One CPU's call_single_queue (kernel/smp.c, 4.0) as the call-function IPIs sent to it see it: a
/// lockless list that senders add requests to (llist_add) and each call-function handler empties
/// in one go (llist_del_all in flush_smp_call_function_queue) before running what it took.
/// generic_exec_single sends an IPI only when its llist_add finds the list empty; a request to
/// several CPUs (smp_call_function_many) sends one whatever it finds.
/// <para>
/// Every IPI still able to matter is remembered with when its request was queued (Post) and when
/// its handler empties the queue (Drain) — known once the receiver's state at the arrival is, and
/// until then assumed to be the arrival itself. The queue holds something at a time t when the
/// latest request queued by t was queued no earlier than the latest emptying by t; a request
/// queued then is run by the first handler to empty the queue after t, after the requests that
/// handler already runs. Senders' steps are simulated one after another, not in time order, so a
/// request can be queued before an IPI already remembered: any of them, not only the latest,
/// can be the one that carries it.
/// </para>
/// </summary>
public sealed class CallSingleQueue
{
    private struct Ipi
    {
        public int Serial;
        public long Post;
        public long Drain;
        public long RunEnd;
        public bool Known;
        public bool Idle;
    }

    private Ipi[] _ipis = new Ipi[8];
    private int _count;

    /// <summary>The latest emptying among the IPIs forgotten (all before the simulation's current time and before every request still to be checked).</summary>
    private long _drainedBefore = long.MinValue;

    /// <summary>When each request still to be checked again at an IPI's arrival was queued (a multiset, unordered).</summary>
    private long[] _unchecked = new long[4];
    private int _uncheckedCount;

    /// <summary>The IPIs remembered.</summary>
    public int Count => _count;

    /// <summary>
    /// Remembers IPI <paramref name="serial"/>: its request queued at <paramref name="post"/>, the queue
    /// emptied by its handler at <paramref name="drain"/> (the arrival, while not <paramref name="known"/>),
    /// its handler done with what it took by <paramref name="runEnd"/>; <paramref name="idle"/>: taken on
    /// an idle CPU. IPIs known to have emptied the queue by <paramref name="now"/>, and before every
    /// request still to be checked at an arrival was queued, are forgotten first: no request is
    /// queued before the simulation's current time, but an arrival asks what the queue held when its
    /// request was queued, up to an IPI's flight earlier — or longer, for a request riding on an IPI
    /// still on its way (<see cref="AwaitCheck"/>). A forgotten emptying still counts as one, at the
    /// latest forgotten time, so one forgotten before such a request was queued would hide its carrier.
    /// </summary>
    public void Add(int serial, long post, long drain, long runEnd, bool known, bool idle, long now)
    {
        if (drain <= post)
        {
            throw new ArgumentOutOfRangeException(nameof(drain), $"IPI {serial} empties the queue at {drain}, not after its request was queued at {post}.");
        }
        Forget(now);
        if (_count == _ipis.Length)
        {
            Array.Resize(ref _ipis, _count * 2);
        }
        _ipis[_count++] = new Ipi { Serial = serial, Post = post, Drain = drain, RunEnd = runEnd, Known = known, Idle = idle };
    }

    private void Forget(long now)
    {
        long before = now;
        for (int i = 0; i < _uncheckedCount; i++)
        {
            before = Math.Min(before, _unchecked[i]);
        }
        for (int i = _count - 1; i >= 0; i--)
        {
            if (_ipis[i].Known && _ipis[i].Drain <= before)
            {
                _drainedBefore = Math.Max(_drainedBefore, _ipis[i].Drain);
                RemoveAt(i);
            }
        }
    }

    /// <summary>
    /// The IPI whose handler runs a request queued at <paramref name="t"/> that sends no IPI because
    /// the queue holds something then, ignoring IPI <paramref name="exclude"/> (0: none): the index
    /// of the first to empty the queue after <paramref name="t"/> (the lower serial on a tie), or -1
    /// when the queue is empty at <paramref name="t"/>.
    /// </summary>
    public int CarrierAt(long t, int exclude = 0)
    {
        long lastPost = long.MinValue;
        bool anyPost = false;
        long lastDrain = _drainedBefore;
        int carrier = -1;
        for (int i = 0; i < _count; i++)
        {
            ref Ipi q = ref _ipis[i];
            if (q.Serial == exclude)
            {
                continue;
            }
            if (q.Post <= t && (!anyPost || q.Post > lastPost))
            {
                lastPost = q.Post;
                anyPost = true;
            }
            if (q.Drain <= t)
            {
                lastDrain = Math.Max(lastDrain, q.Drain);
            }
            else if (carrier < 0 || q.Drain < _ipis[carrier].Drain || (q.Drain == _ipis[carrier].Drain && q.Serial < _ipis[carrier].Serial))
            {
                carrier = i;
            }
        }
        // A request queued at the very instant of an emptying is taken as queued after it.
        return anyPost && lastPost >= lastDrain ? carrier : -1;
    }

    /// <summary>The index of IPI <paramref name="serial"/>, or -1 when it is not remembered.</summary>
    public int IndexOf(int serial)
    {
        for (int i = 0; i < _count; i++)
        {
            if (_ipis[i].Serial == serial)
            {
                return i;
            }
        }
        return -1;
    }

    public int Serial(int index) => _ipis[index].Serial;

    /// <summary>Whether the handling of the IPI at <paramref name="index"/> is known (else its emptying is assumed at its arrival).</summary>
    public bool Known(int index) => _ipis[index].Known;

    /// <summary>Whether the IPI at <paramref name="index"/> was taken on an idle CPU.</summary>
    public bool Idle(int index) => _ipis[index].Idle;

    /// <summary>When the handler of the IPI at <paramref name="index"/> empties the queue (its arrival while not known).</summary>
    public long Drain(int index) => _ipis[index].Drain;

    /// <summary>When the handler of the IPI at <paramref name="index"/> is done with the requests it took so far: where the next one it takes starts.</summary>
    public ref long RunEnd(int index) => ref _ipis[index].RunEnd;

    /// <summary>The handling of the IPI at <paramref name="index"/> became known.</summary>
    public void Resolve(int index, long drain, long runEnd, bool idle)
    {
        ref Ipi q = ref _ipis[index];
        if (drain <= q.Post)
        {
            throw new ArgumentOutOfRangeException(nameof(drain), $"IPI {q.Serial} empties the queue at {drain}, not after its request was queued at {q.Post}.");
        }
        q.Drain = drain;
        q.RunEnd = runEnd;
        q.Known = true;
        q.Idle = idle;
    }

    /// <summary>Requests queued and still to be checked at an IPI's arrival (<see cref="AwaitCheck"/>).</summary>
    public int Unchecked => _uncheckedCount;

    /// <summary>
    /// A request queued at <paramref name="post"/> will be checked at an IPI's arrival (CarrierAt of
    /// its queueing time): the emptyings after <paramref name="post"/> are kept until <see cref="Checked"/>.
    /// </summary>
    public void AwaitCheck(long post)
    {
        if (_uncheckedCount == _unchecked.Length)
        {
            Array.Resize(ref _unchecked, _uncheckedCount * 2);
        }
        _unchecked[_uncheckedCount++] = post;
    }

    /// <summary>The request queued at <paramref name="post"/> (<see cref="AwaitCheck"/>) was checked for the last time.</summary>
    public void Checked(long post)
    {
        for (int i = 0; i < _uncheckedCount; i++)
        {
            if (_unchecked[i] == post)
            {
                _unchecked[i] = _unchecked[--_uncheckedCount];
                return;
            }
        }
        throw new InvalidOperationException($"No request queued at {post} awaits a check.");
    }

    /// <summary>Forgets the IPI at <paramref name="index"/> (it turned out never to be sent: its request rode on another). Indices of the others may change.</summary>
    public void RemoveAt(int index)
    {
        _ipis[index] = _ipis[--_count];
    }
}
