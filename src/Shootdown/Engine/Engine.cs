namespace Shootdown.Engine;

/// <summary>The kinds of event the engine orders. Each kind has one handler, registered by the subsystem that owns it.</summary>
public enum EventKind
{
    /// <summary>A CPU finished its current step (argument: CPU id). Owned by the scheduler.</summary>
    CpuStepEnd = 0,

    /// <summary>A timer expired (argument: the timer's id). Owned by the scheduler's timers.</summary>
    Timer = 1,

    /// <summary>A block I/O completed (argument: the request's id). Owned by the block layer (writeback).</summary>
    IoComplete = 2,

    /// <summary>An IPI reaches a CPU whose state at that moment was not simulated when it was sent (argument: the pending IPI's id). Owned by the x86 IPI transport.</summary>
    IpiArrive = 3,

    /// <summary>A CPU's periodic load balance of its scheduler domain is due (argument: CPU id). Owned by the scheduler.</summary>
    Balance = 4,
}

/// <summary>
/// The discrete-event core and nothing else: a simulated clock, one queue of typed events ordered by
/// (time, insertion sequence), and one handler per kind. It knows nothing of CPUs, tasks, kswapd or
/// sampling: the scheduler, timers and the block layer register handlers; observers that need to
/// see time pass (time-series sampling) subscribe to <see cref="Advancing"/>.
/// </summary>
public sealed class Engine
{
    private const int KindBits = 3;
    private const int KindMask = (1 << KindBits) - 1;

    private readonly EventQueue _queue;
    private readonly Action<long, int>?[] _handlers = new Action<long, int>?[KindMask + 1];
    private bool _stop;

    public Engine(int capacity = 64)
    {
        _queue = new EventQueue(capacity);
    }

    /// <summary>Simulated time of the event being (or last) processed, in nanoseconds.</summary>
    public long Now { get; private set; }

    public long EventsProcessed { get; private set; }

    public bool Stopped => _stop;

    /// <summary>Called with the time of the next event before the clock moves to it (observers sample here).</summary>
    public event Action<long>? Advancing;

    /// <summary>Registers the one handler of <paramref name="kind"/>; handlers receive (time, argument).</summary>
    public void On(EventKind kind, Action<long, int> handler)
    {
        if (_handlers[(int)kind] is not null)
        {
            throw new InvalidOperationException($"a handler for {kind} is already registered");
        }
        _handlers[(int)kind] = handler;
    }

    /// <summary>Schedules an event of <paramref name="kind"/> at <paramref name="time"/> (not before <see cref="Now"/>).</summary>
    public void Schedule(long time, EventKind kind, int arg)
    {
        if (arg < 0 || arg > (int.MaxValue >> KindBits))
        {
            throw new ArgumentOutOfRangeException(nameof(arg), arg, "event argument out of range");
        }
        _queue.Push(Math.Max(time, Now), (arg << KindBits) | (int)kind);
    }

    /// <summary>Ends the run after the current event.</summary>
    public void Stop() => _stop = true;

    /// <summary>Processes the next event, if any; returns false when the queue is empty.</summary>
    public bool Step()
    {
        if (!_queue.TryPop(out long t, out int payload))
        {
            return false;
        }
        Advancing?.Invoke(t);
        Now = t;
        EventsProcessed++;
        _handlers[payload & KindMask]!(t, payload >> KindBits);
        return true;
    }

    /// <summary>
    /// Processes events in (time, sequence) order while <paramref name="running"/> holds and the queue
    /// is not empty. Returns false if the queue ran dry while <paramref name="running"/> still held.
    /// <paramref name="afterEvent"/> runs after each event (progress reports).
    /// </summary>
    public bool Run(Func<bool> running, Action? afterEvent = null)
    {
        while (!_stop && running())
        {
            if (!Step())
            {
                return false;
            }
            afterEvent?.Invoke();
        }
        return true;
    }
}
