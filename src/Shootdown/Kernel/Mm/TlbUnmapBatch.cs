using Shootdown.Hardware;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// struct tlbflush_unmap_batch (task->tlb_ubc): the arch part (x86: the CPUs that may cache an
/// unmapped page), whether a flush is owed, whether a writable (dirty) PTE was unmapped, and — for
/// the PFN lists of RFC v1 and v6 4/4 — the pages' PFNs.
/// </summary>
public sealed class TlbUnmapBatch
{
    public TlbUnmapBatch(int nrCpus, int capacity)
    {
        CpuMask = new Cpumask(nrCpus);
        Capacity = capacity;
        Pfns = new int[capacity];
    }

    /// <summary>struct arch_tlbflush_unmap_batch of x86: a cpumask.</summary>
    public Cpumask CpuMask { get; }

    public int Capacity { get; }

    /// <summary>pfns[] of RFC v1 and v6 4/4: page_to_pfn of each page unmapped into the batch.</summary>
    public readonly int[] Pfns;
    public int Count;
    public bool FlushRequired;
    public bool Writable;

    public bool IsFull => Count >= Capacity;

    /// <summary>
    /// Unmaps deferred into the batch since its last flush, and the distinct mms they belonged to
    /// (<see cref="Mms"/>[0..<see cref="NrMms"/>)): not kernel state — the kernel keeps only the
    /// cpumask — but what <see cref="Observe.BatchFlushStats"/> reports of each flush.
    /// </summary>
    public int Pages;

    public int[] Mms = new int[8];
    public int NrMms;

    /// <summary>Counts an unmap of <paramref name="mm"/>'s deferred into the batch.</summary>
    public void NoteDeferred(MmStruct mm)
    {
        Pages++;
        int id = mm.Id;
        if (Array.IndexOf(Mms, id, 0, NrMms) >= 0)
        {
            return;
        }
        if (NrMms == Mms.Length)
        {
            Array.Resize(ref Mms, Mms.Length * 2);
        }
        Mms[NrMms++] = id;
    }

    public void Reset()
    {
        CpuMask.ClearAll();
        Pages = 0;
        NrMms = 0;
        Count = 0;
        FlushRequired = false;
        Writable = false;
    }
}
