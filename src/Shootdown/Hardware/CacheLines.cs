namespace Shootdown.Hardware;

/// <summary>
/// Where kernel data lives in the machine's caches, and what it costs to pull a cache line to the
/// CPU that touches it. A line last written by this CPU is in its own cache (no extra cost: the
/// kernel-path constants are for code running on cached data); one written by another CPU of the
/// same socket comes from that core (<see cref="CostModel.CacheLineSameNodeNs"/>); one written on
/// another socket crosses the interconnect (<see cref="CostModel.CacheLineRemoteNodeNs"/>); one in
/// no cache comes from the DRAM of its node (<see cref="CostModel.DramLocalNs"/> or
/// <see cref="CostModel.DramRemoteNodeNs"/>). Remote figures are for the reference distance 21 and
/// scale with the machine's NUMA distance. Owners are CPU ids; -1 = no cache holds the line.
/// The model tracks the lines the seed's workload moves between CPUs: struct pages, page-table
/// lines, the radix-tree lines of a file, and every spinlock's word with the data it guards.
/// <para>
/// Caches are finite. Each socket's last-level cache holds <see cref="CostModel.LlcBytes"/>; a
/// socket's fill clock counts the lines brought into it: struct page and PTE lines fetched from
/// another socket or from DRAM, and the 64 lines of each page <c>clear_page</c> writes (128 for
/// <c>copy_page</c>), which is most of it (lock words and IPI queues are not counted; user data is
/// the page just cleared). A struct page or PTE line carries the clock of its owner's socket at its
/// last write; once that socket has filled more lines than its cache holds, the line has been
/// evicted and comes from DRAM of its node (an LRU cache: lines the kernel keeps touching — lock
/// words, list heads, the pages being worked on — stay; a struct page last written when its page
/// was read, a whole LRU cycle ago, does not). The cache is the machine's: a scaled run keeps it at full size, so what a path touches
/// within a few milliseconds hits as on the full-size machine and what it touched a memory-cycle
/// ago misses on both.
/// </para>
/// </summary>
public sealed class CacheLines
{
    private readonly int[] _nodeOfCpu;
    private readonly CostModel _c;
    private readonly long[] _dram;

    /// <summary>A modified line's transfer between a CPU of node a and one of node b (row-major), same node or scaled by distance.</summary>
    private readonly long[] _line;

    /// <summary>Each socket's fill clock, in eighths of a line (a reclaimer's PTE read is an eighth of a line: one line holds <c>PtesPerLine</c> = 8 PTEs of pages walked in order).</summary>
    private readonly long[] _fills;

    /// <summary>Last-level cache of a socket, in units of 2^<see cref="StampShift"/> clock ticks (16 lines); 0 = unlimited.</summary>
    private readonly uint _capacity;

    /// <summary>Fill-clock ticks of one line.</summary>
    private const int TicksPerLine = 8;

    /// <summary>Stamps count fills in units of 2^7 ticks (16 lines), so a uint stamp wraps only after 2^36 lines (4 TiB) filled into a socket.</summary>
    private const int StampShift = 7;

    /// <summary>Lines of one 4 KiB page.</summary>
    public const int LinesPerPage = 64;

    public CacheLines(int nodes, int cpusPerNode, NumaDistance distance, CostModel costs)
    {
        _nodeOfCpu = new int[nodes * cpusPerNode];
        for (int c = 0; c < _nodeOfCpu.Length; c++)
        {
            _nodeOfCpu[c] = c / cpusPerNode;
        }
        _c = costs;
        Nodes = nodes;
        _dram = new long[nodes * nodes];
        _fills = new long[nodes];
        _capacity = costs.LlcBytes <= 0 ? 0 : (uint)Math.Clamp(costs.LlcBytes / 64 * TicksPerLine >> StampShift, 1, uint.MaxValue);
        _line = new long[nodes * nodes];
        for (int a = 0; a < nodes; a++)
        {
            for (int b = 0; b < nodes; b++)
            {
                _dram[a * nodes + b] = a == b ? costs.DramLocalNs : distance.Scale(costs.DramRemoteNodeNs, a, b);
                _line[a * nodes + b] = a == b ? costs.CacheLineSameNodeNs : distance.Scale(costs.CacheLineRemoteNodeNs, a, b);
            }
        }
    }

    public int Nodes { get; }

    /// <summary>The cost for <paramref name="cpu"/> to take (for writing) a line last written by <paramref name="owner"/>.</summary>
    public long Transfer(int owner, int cpu)
    {
        if (owner == cpu)
        {
            return 0;
        }
        if (owner < 0)
        {
            return _dram[_nodeOfCpu[cpu] * Nodes + _nodeOfCpu[cpu]];
        }
        return _line[_nodeOfCpu[owner] * Nodes + _nodeOfCpu[cpu]];
    }

    /// <summary>The fill clock of <paramref name="node"/>'s cache, as a stamp.</summary>
    public uint Clock(int node) => (uint)(_fills[node] >> StampShift);

    /// <summary>The last-level cache's capacity in lines (0: unlimited).</summary>
    public long CapacityLines => ((long)_capacity << StampShift) / TicksPerLine;

    /// <summary>Whether a line <paramref name="owner"/> last wrote (or read back) at <paramref name="stamp"/> is still in its socket's cache.</summary>
    private bool Resident(int owner, uint stamp) => owner >= 0 && (_capacity == 0 || Clock(_nodeOfCpu[owner]) - stamp < _capacity);

    /// <summary>
    /// What bringing a line to <paramref name="cpu"/> costs: nothing if its cache has it, the
    /// transfer from its owner's cache, or DRAM of <paramref name="memNode"/> once it was evicted (or
    /// if no CPU ever wrote it). A line that comes from outside the socket fills its cache with
    /// <paramref name="ticks"/> (the socket's L3 is inclusive: a line another core of the socket
    /// has is in it already).
    /// </summary>
    private long Fetch(int owner, uint stamp, int cpu, int memNode, int ticks, out bool resident)
    {
        int n = _nodeOfCpu[cpu];
        resident = Resident(owner, stamp);
        if (resident)
        {
            if (owner == cpu)
            {
                return 0;
            }
            int on = _nodeOfCpu[owner];
            if (on != n)
            {
                _fills[n] += ticks;
            }
            return _line[on * Nodes + n];
        }
        _fills[n] += ticks;
        return _dram[n * Nodes + memNode];
    }

    /// <summary>
    /// Reads a struct page's line without taking it (<see cref="Fetch"/>). An evicted line read back
    /// on its owner's socket is that socket's again from now on; a copy another socket reads is
    /// not tracked.
    /// </summary>
    public long Read(ref Kernel.Mm.Page p, int cpu, int memNode)
    {
        long cost = Fetch(p.Owner, p.Stamp, cpu, memNode, TicksPerLine, out bool resident);
        if (!resident && p.Owner >= 0 && _nodeOfCpu[p.Owner] == _nodeOfCpu[cpu])
        {
            p.Stamp = Clock(_nodeOfCpu[cpu]);
        }
        return cost;
    }

    /// <summary>
    /// Writes a struct page's line: returns what bringing it here costs (<see cref="Fetch"/>) and
    /// makes <paramref name="cpu"/> its owner, stamped with its socket's clock.
    /// </summary>
    public long Take(ref Kernel.Mm.Page p, int cpu, int memNode)
    {
        long cost = Fetch(p.Owner, p.Stamp, cpu, memNode, TicksPerLine, out _);
        p.Owner = (short)cpu;
        p.Stamp = Clock(_nodeOfCpu[cpu]);
        return cost;
    }

    /// <summary>
    /// A reclaimer's read of the PTE that maps a page: its line (PtesPerLine PTEs) was last written
    /// by <paramref name="writer"/> at <paramref name="stamp"/> and lies in a page table on
    /// <paramref name="tableNode"/> (-1: unknown, taken as this CPU's). Returns what bringing the
    /// whole line costs; the caller charges the page its share, and the fill clock advances by that
    /// share (an eighth of a line).
    /// </summary>
    public long PteLine(int writer, uint stamp, int tableNode, int cpu) => Fetch(writer, stamp, cpu, tableNode < 0 ? _nodeOfCpu[cpu] : tableNode, 1, out _);

    /// <summary>Stamps a PTE line that <paramref name="cpu"/> writes now (the page table's own record: <see cref="Kernel.Mm.Memory.PteWriter"/>).</summary>
    public uint StampNow(int cpu) => Clock(_nodeOfCpu[cpu]);

    /// <summary>Takes a line of kernel data allocated on <paramref name="cpu"/>'s node (a lock word, a counter).</summary>
    public long Take(ref int owner, int cpu) => Take(ref owner, cpu, _nodeOfCpu[cpu]);

    /// <summary>Like <see cref="Take(ref Kernel.Mm.Page, int, int)"/> for hot kernel lines kept in an int (lock words, counters, queues: never aged, as their users keep touching them).</summary>
    public long Take(ref int owner, int cpu, int memNode)
    {
        int o = owner;
        owner = cpu;
        if (o == cpu)
        {
            return 0;
        }
        return o < 0 ? _dram[_nodeOfCpu[cpu] * Nodes + memNode] : Transfer(o, cpu);
    }

    /// <summary>
    /// clear_page of a 4 KiB frame on <paramref name="memNode"/> by a CPU of <paramref name="cpuNode"/>:
    /// bandwidth-bound stores, slower to a remote node by the ratio of the memory latencies, at the
    /// clearing thread's constants <paramref name="c"/> (its sibling busy or not).
    /// </summary>
    public long ClearPage(CostModel c, int cpuNode, int memNode)
    {
        _fills[cpuNode] += LinesPerPage * TicksPerLine;
        return c.ClearPageNs * _dram[cpuNode * Nodes + memNode] / _c.DramLocalNs;
    }

    /// <summary>copy_page by a CPU of <paramref name="cpuNode"/> at its thread's constants <paramref name="c"/>: its cache fills with both pages' lines.</summary>
    public long CopyPage(CostModel c, int cpuNode)
    {
        _fills[cpuNode] += 2 * LinesPerPage * TicksPerLine;
        return c.CopyPageNs;
    }
}
