using BenchmarkDotNet.Attributes;
using Shootdown.Hardware;
using Shootdown.Kernel.Mm;

namespace Shootdown.Benchmarks;

/// <summary>
/// <see cref="ZoneStats"/>, the zone counters' per-CPU differentials, as the kernel paths call it:
/// one update per operation, on CPUs of four nodes in turn, at the 4-node machine's pressure
/// threshold (10) or its normal one (96). <see cref="Delta"/> 1 is a page-at-a-time update (the
/// LRU add, a free into the buddy lists; it folds once per threshold + 1 updates of one CPU), 32
/// a batch update (isolation's; it folds every time at the pressure threshold, every fourth at the
/// normal one). Figures are per update.
/// </summary>
[MemoryDiagnoser]
public class ZoneStatsBenchmarks
{
    private const int Ops = 1024;
    private const int Cpus = 48;

    private ZoneStats _zs = null!;

    [Params(1, 32)]
    public int Delta { get; set; }

    [Params(false, true)]
    public bool Pressure { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        CostModel costs = CostModel.Xeon2015;
        var lines = new CacheLines(4, 12, NumaDistance.Uniform(4), costs);
        var zones = new Zone[4];
        for (int n = 0; n < 4; n++)
        {
            zones[n] = new Zone(n, n * 4_194_304, 4_194_304, 2048, 2560, 3072, Cpus) { Index = n };
        }
        _zs = new ZoneStats(zones, Cpus, lines, costs);
        for (int n = 0; n < 4; n++)
        {
            _zs.SetNodeThreshold(n, Pressure, n * 12);
        }
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public long Mod()
    {
        long cost = 0;
        for (int i = 0; i < Ops; i++)
        {
            int cpu = i % Cpus;
            cost += _zs.Mod(cpu, (i >> 3) & 3, ZoneStatItem.NrInactiveFile, Delta);
        }
        return cost;
    }

    /// <summary>Allocations' watermark reads of a zone's first counter line, with a fold into that line by another CPU after every eighth read (so most reads fetch it).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public long ReadLine0()
    {
        long cost = 0;
        for (int i = 0; i < Ops; i++)
        {
            int zone = (i >> 3) & 3;
            cost += _zs.ReadLine0(i % Cpus, zone);
            if ((i & 7) == 7)
            {
                cost += _zs.Mod((i * 7) % Cpus, zone, ZoneStatItem.NrFreePages, 200);
            }
        }
        return cost;
    }
}
