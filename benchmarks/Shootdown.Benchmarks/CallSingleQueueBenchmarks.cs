using BenchmarkDotNet.Attributes;
using Shootdown.Kernel;

namespace Shootdown.Benchmarks;

/// <summary>
/// One CPU's <see cref="CallSingleQueue"/> in a steady state: every operation is one single-target
/// request as <c>X86TlbFlush</c> handles it — registered for its check at the arrival
/// (<see cref="CallSingleQueue.AwaitCheck"/>), its IPI remembered (<see cref="CallSingleQueue.Add"/>,
/// which first forgets the IPIs whose emptying nothing can need any more), the carrier looked up for
/// a request queued just before it (<see cref="CallSingleQueue.CarrierAt"/>, a scan of the list),
/// and the oldest request still awaiting its check checked off. <see cref="Remembered"/> IPIs empty
/// the queue after the simulation's current time and <see cref="Unchecked"/> requests await their
/// check, so the list holds <c>Remembered + Unchecked</c> IPIs. Figures are per request.
/// </summary>
[MemoryDiagnoser]
public class CallSingleQueueBenchmarks
{
    private const int Ops = 1024;
    private const long Period = 1_000;

    private CallSingleQueue _queue = null!;
    private long _k;
    private int _serial;

    /// <summary>IPIs whose handlers have not emptied the queue by the current time.</summary>
    [Params(2, 8, 32)]
    public int Remembered { get; set; }

    /// <summary>Requests queued and still to be checked at an arrival.</summary>
    [Params(0, 4)]
    public int Unchecked { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _queue = new CallSingleQueue();
        _k = 0;
        _serial = 0;
        // Reach the steady state before measuring, so the arrays have grown to their peak.
        for (int i = 0; i < 4 * (Remembered + Unchecked + 1); i++)
        {
            Step();
        }
    }

    private int Step()
    {
        CallSingleQueue q = _queue;
        long k = ++_k;
        long post = k * Period;
        q.AwaitCheck(post);
        q.Add(++_serial, post, post + Remembered * Period, post + Remembered * Period + 100, known: true, idle: false, now: post);
        int carrier = q.CarrierAt(post - Period / 2);
        if (k > Unchecked)
        {
            q.Checked((k - Unchecked) * Period);
        }
        return carrier;
    }

    /// <summary>A request's whole round through the queue: register, remember, find a carrier, check off.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int Request()
    {
        int acc = 0;
        for (int i = 0; i < Ops; i++)
        {
            acc += Step();
        }
        return acc;
    }
}
