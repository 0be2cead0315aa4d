using Shootdown.Kernel.Sched;
using Shootdown.Reports;

namespace Shootdown.Observe;

/// <summary>
/// What the batching policies' flushes looked like: for each try_to_unmap_flush that had a flush
/// owed (and for each PFN list flushed as it filled), how many unmaps the batch held, how many mms
/// they belonged to, and which CPUs its cpumask named — the sender, and the others, which
/// smp_call_function_many interrupts. Each other CPU is classed by what the simulation has it doing
/// when the flush is sent: running one of the batch's mms, running none (idle, or a kernel thread
/// holding an mm lazily: x86's lazy TLB mode), or running another mm (a cpumask bit that a context
/// switch has not cleared). Not kernel state: an observation, for telling why a batch interrupts
/// as many CPUs as it does. Nothing here costs simulated time.
/// </summary>
public sealed class BatchFlushStats
{
    private readonly Cause[] _causes;
    private readonly int _nrCpus;

    public BatchFlushStats(int nrCpus)
    {
        _nrCpus = nrCpus;
        _causes = new Cause[Enum.GetValues<FlushCause>().Length];
    }

    /// <summary>
    /// Records one flush of <paramref name="pages"/> deferred unmaps of the mms
    /// <paramref name="mms"/>[0..<paramref name="nrMms"/>) whose cpumask is <paramref name="mask"/>,
    /// sent from <paramref name="sender"/> for <paramref name="cause"/>.
    /// </summary>
    public void Record(FlushCause cause, Cpu sender, Hardware.Cpumask mask, Cpu[] cpus, int pages, int[] mms, int nrMms)
    {
        Cause c = _causes[(int)cause] ??= new Cause(_nrCpus);
        c.Flushes++;
        c.Pages += pages;
        c.Mms += nrMms;
        if (mask.Test(sender.Id))
        {
            c.SenderInMask++;
        }
        int remote = 0;
        for (int id = mask.NextSet(0); id >= 0; id = mask.NextSet(id + 1))
        {
            if (id == sender.Id)
            {
                continue;
            }
            remote++;
            Cpu r = cpus[id];
            if (r.Lazy || r.Current?.Mm is null)
            {
                c.LazyOrIdle++;
            }
            else if (Array.IndexOf(mms, r.ActiveMm, 0, nrMms) >= 0)
            {
                c.RunningBatchedMm++;
            }
            else
            {
                c.RunningOtherMm++;
            }
        }
        c.Remote += remote;
        c.ByRemote[remote]++;
    }

    /// <summary>The report per cause ("reclaim", "migration", ...), none for a cause no flush was recorded for; null when there were no flushes at all.</summary>
    public SortedDictionary<string, BatchFlushReport>? Report()
    {
        SortedDictionary<string, BatchFlushReport>? d = null;
        for (int i = 0; i < _causes.Length; i++)
        {
            if (_causes[i] is not { } c)
            {
                continue;
            }
            double n = c.Flushes;
            int last = Array.FindLastIndex(c.ByRemote, x => x != 0);
            d ??= new SortedDictionary<string, BatchFlushReport>(StringComparer.Ordinal);
            d[FlushCauseNames.Of((FlushCause)i)] = new BatchFlushReport
            {
                Flushes = c.Flushes,
                Pages = c.Pages,
                PagesPerFlush = c.Pages / n,
                MmsPerFlush = c.Mms / n,
                SenderInMaskShare = c.SenderInMask / n,
                RemoteCpusPerFlush = c.Remote / n,
                RemoteRunningBatchedMmPerFlush = c.RunningBatchedMm / n,
                RemoteLazyOrIdlePerFlush = c.LazyOrIdle / n,
                RemoteRunningOtherMmPerFlush = c.RunningOtherMm / n,
                FlushesByRemoteCpus = c.ByRemote[..(last + 1)],
            };
        }
        return d;
    }

    private sealed class Cause(int nrCpus)
    {
        public long Flushes;
        public long Pages;
        public long Mms;
        public long SenderInMask;
        public long Remote;
        public long RunningBatchedMm;
        public long LazyOrIdle;
        public long RunningOtherMm;
        public readonly long[] ByRemote = new long[nrCpus];
    }
}

/// <summary>One cause's batch flushes (<see cref="BatchFlushStats"/>), in `run --format json`'s `tlb_batch_flushes`.</summary>
public sealed record BatchFlushReport
{
    /// <summary>Flushes of a batch that owed one (try_to_unmap_flush, and PFN lists flushed as they filled).</summary>
    public required long Flushes { get; init; }

    /// <summary>Unmaps whose flush was deferred into these batches.</summary>
    public required long Pages { get; init; }

    public required double PagesPerFlush { get; init; }

    /// <summary>Distinct mms whose PTEs a batch cleared, on average.</summary>
    public required double MmsPerFlush { get; init; }

    /// <summary>Share of flushes whose cpumask named the sending CPU itself.</summary>
    public required double SenderInMaskShare { get; init; }

    /// <summary>Other CPUs in the cpumask — the CPUs smp_call_function_many interrupts — on average.</summary>
    public required double RemoteCpusPerFlush { get; init; }

    /// <summary>Of those, CPUs running one of the batch's mms when the flush was sent.</summary>
    public required double RemoteRunningBatchedMmPerFlush { get; init; }

    /// <summary>Of those, CPUs running no user mm: idle, or a kernel thread holding an mm lazily.</summary>
    public required double RemoteLazyOrIdlePerFlush { get; init; }

    /// <summary>Of those, CPUs running an mm the batch did not touch.</summary>
    public required double RemoteRunningOtherMmPerFlush { get; init; }

    /// <summary>Flushes by how many other CPUs their cpumask named: element k counts those with k.</summary>
    public required long[] FlushesByRemoteCpus { get; init; }
}
