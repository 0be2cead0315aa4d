namespace Shootdown.Observe;

/// <summary>The per-interval columns kept for every run.</summary>
public enum Series
{
    Interrupts,
    TlbIpis,
    TimerTicks,
    PgscanKswapd,
    PgscanDirect,
    PgstealKswapd,
    PgstealDirect,
    Faults,
}

/// <summary>
/// Counts bucketed by simulated time (default 100 ms buckets). Rates per second are sums over
/// buckets divided by their span.
/// </summary>
public sealed class TimeSeries
{
    private static readonly int NrSeries = Enum.GetValues<Series>().Length;
    private long[] _data;
    private int _buckets;

    public TimeSeries(long intervalNs)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(intervalNs);
        IntervalNs = intervalNs;
        _data = new long[NrSeries * 256];
    }

    public long IntervalNs { get; }

    public int Buckets => _buckets;

    /// <summary>A second series, at another interval, that receives every count added here.</summary>
    public TimeSeries? Mirror { get; init; }

    // The bucket of the last Add: most adds fall in it, which spares a 64-bit division per add.
    private long _lastFrom = long.MaxValue;
    private long _lastTo = long.MinValue;
    private int _lastBucket;

    public void Add(Series s, long t, long n)
    {
        Mirror?.Add(s, t, n);
        int b;
        if (t >= _lastFrom && t < _lastTo)
        {
            b = _lastBucket;
        }
        else
        {
            b = (int)(t / IntervalNs);
            _lastBucket = b;
            _lastFrom = b * IntervalNs;
            _lastTo = _lastFrom + IntervalNs;
        }
        if (b >= _buckets)
        {
            if ((b + 1) * NrSeries > _data.Length)
            {
                Array.Resize(ref _data, Math.Max(_data.Length * 2, (b + 1) * NrSeries));
            }
            _buckets = b + 1;
        }
        _data[b * NrSeries + (int)s] += n;
    }

    private long[][] _free = [];
    private int[] _runnable = [];

    /// <summary>Records free pages per node and runnable tasks at the start of the bucket holding <paramref name="t"/>.</summary>
    public void SetGauges(long t, Kernel.Mm.Zone[] zones, int runnable)
    {
        int b = (int)(t / IntervalNs);
        if (b >= _runnable.Length)
        {
            int n = Math.Max(b + 1, _runnable.Length * 2);
            Array.Resize(ref _runnable, n);
            Array.Resize(ref _free, n);
        }
        var f = new long[zones[^1].Node + 1];
        foreach (Kernel.Mm.Zone z in zones)
        {
            f[z.Node] += z.NrFree; // a node's zones together (node 0 may have ZONE_DMA32 and ZONE_NORMAL)
        }
        _free[b] = f;
        _runnable[b] = runnable;
        if (b >= _buckets)
        {
            Add(Series.Interrupts, t, 0);
        }
    }

    /// <summary>Free pages of <paramref name="node"/> at the start of a bucket (-1 if not sampled).</summary>
    public long FreeAt(int bucket, int node) => bucket < _free.Length && _free[bucket] is { } f ? f[node] : -1;

    public int RunnableAt(int bucket) => bucket < _runnable.Length ? _runnable[bucket] : 0;

    public long Get(Series s, int bucket) => bucket < _buckets ? _data[bucket * NrSeries + (int)s] : 0;

    /// <summary>Sum of a series over whole buckets inside [fromNs, toNs), and the span they cover.</summary>
    public (long Sum, long SpanNs) SumWithin(Series s, long fromNs, long toNs)
    {
        long first = (fromNs + IntervalNs - 1) / IntervalNs;
        long last = Math.Min(toNs / IntervalNs, _buckets); // exclusive; nothing was counted beyond
        long sum = 0;
        for (long b = first; b < last; b++)
        {
            sum += Get(s, (int)b);
        }
        return (sum, Math.Max(0, last - first) * IntervalNs);
    }
}
