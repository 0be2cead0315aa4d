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
/// socket's fill clock counts the lines brought into it (every line fetched from another cache or
/// from DRAM, and the 64 lines of each page <c>clear_page</c> writes, which is most of it). A struct
/// page or PTE line carries the clock of its owner's socket at its last write; once that socket has
/// filled more lines than its cache holds, the line has been evicted and comes from DRAM of its
/// node (an LRU cache: lines the kernel keeps touching — lock words, list heads, the pages being
/// worked on — stay; a struct page last written when its page was read, a whole LRU cycle ago, does
/// not). The cache is the machine's: a scaled run keeps it at full size, so what a path touches
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

    /// <summary>Each socket's fill clock, in lines.</summary>
    private readonly long[] _fills;

    /// <summary>Last-level cache of a socket, in units of <see cref="StampShift"/> lines (uint.MaxValue: unlimited).</summary>
    private readonly uint _capacity;

    /// <summary>Stamps count fills in units of 16 lines, so a uint stamp wraps only after 2^36 fills of a socket.</summary>
    private const int StampShift = 4;

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
        _capacity = costs.LlcBytes <= 0 ? uint.MaxValue : (uint)Math.Min(uint.MaxValue - 1, costs.LlcBytes / 64 >> StampShift);
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

    /// <summary>A line of memory on <paramref name="memNode"/> that no cache holds, read by a CPU of <paramref name="cpuNode"/>.</summary>
    public long Dram(int cpuNode, int memNode) => _dram[cpuNode * Nodes + memNode];

    /// <summary>The fill clock of <paramref name="node"/>'s cache, as a stamp.</summary>
    public uint Clock(int node) => (uint)(_fills[node] >> StampShift);

    /// <summary>Whether a line <paramref name="owner"/> last wrote at <paramref name="stamp"/> is still in its socket's cache.</summary>
    private bool Resident(int owner, uint stamp) => owner >= 0 && Clock(_nodeOfCpu[owner]) - stamp < _capacity;

    /// <summary>
    /// Reads a struct page's line without taking it: nothing if this CPU's cache has it, the
    /// transfer from its owner's cache, or DRAM of <paramref name="memNode"/> once it was evicted.
    /// </summary>
    public long Read(in Kernel.Mm.Page p, int cpu, int memNode)
    {
        int o = p.Owner;
        long cost = Resident(o, p.Stamp) ? (o == cpu ? 0 : _line[_nodeOfCpu[o] * Nodes + _nodeOfCpu[cpu]]) : _dram[_nodeOfCpu[cpu] * Nodes + memNode];
        if (cost != 0)
        {
            _fills[_nodeOfCpu[cpu]]++;
        }
        return cost;
    }

    /// <summary>
    /// Writes a struct page's line: returns what bringing it here costs (as <see cref="Read"/>) and
    /// makes <paramref name="cpu"/> its owner, stamped with its socket's clock.
    /// </summary>
    public long Take(ref Kernel.Mm.Page p, int cpu, int memNode)
    {
        long cost = Read(in p, cpu, memNode);
        p.Owner = (short)cpu;
        p.Stamp = Clock(_nodeOfCpu[cpu]);
        return cost;
    }

    /// <summary>
    /// A PTE line a reclaimer reads: written by <paramref name="owner"/> (the CPU that faulted the
    /// page in) at <paramref name="stamp"/>, in a page table on that CPU's node. The transfer from
    /// its cache while it is there, else DRAM of that node.
    /// </summary>
    public long PteLine(int owner, uint stamp, int cpu)
    {
        if (owner < 0)
        {
            return 0;
        }
        long cost = Resident(owner, stamp) ? Transfer(owner, cpu) : _dram[_nodeOfCpu[cpu] * Nodes + _nodeOfCpu[owner]];
        if (cost != 0)
        {
            _fills[_nodeOfCpu[cpu]]++;
        }
        return cost;
    }

    /// <summary>Takes a line of kernel data allocated on <paramref name="cpu"/>'s node (a lock word, a counter).</summary>
    public long Take(ref int owner, int cpu) => Take(ref owner, cpu, _nodeOfCpu[cpu]);

    /// <summary>Like <see cref="Take(ref short, int, int)"/> for lines kept in an int.</summary>
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
    /// bandwidth-bound stores, slower to a remote node by the ratio of the memory latencies.
    /// </summary>
    public long ClearPage(int cpuNode, int memNode)
    {
        _fills[cpuNode] += LinesPerPage;
        return _c.ClearPageNs * _dram[cpuNode * Nodes + memNode] / _c.DramLocalNs;
    }

    /// <summary>copy_page by a CPU of <paramref name="cpuNode"/>: its cache fills with both pages' lines.</summary>
    public long CopyPage(int cpuNode)
    {
        _fills[cpuNode] += 2 * LinesPerPage;
        return _c.CopyPageNs;
    }
}
