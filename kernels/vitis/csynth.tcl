# Vitis HLS C synthesis of m3vit_backbone for one board configuration: schedule, II, latency and
# resource estimates only (no RTL export, no .xo, no bitstream). The Makefile's `csynth` target
# runs it from build/<board>/hls:
#
#   vitis_hls -f csynth.tcl -tclargs <kernels dir> <board> <part> <MHz> <board define>
#   e.g.  ... -tclargs /abs/path/kernels zcu102 xczu9eg-ffvb1156-2-e 300 EDGEMOE_BOARD_ZCU102
#
# The board config arrives as a bare define name (hls_types.h selects config/<board>.h with #if),
# so nothing here needs nested quotes. Include paths are made absolute because HLS compiles from
# its own project directory, not from where this script was started.
# Reports: m3vit_<board>/solution/syn/report/ under the directory vitis_hls ran in.

if {$argc != 5} {
    puts stderr "usage: vitis_hls -f csynth.tcl -tclargs <kernels dir> <board> <part> <MHz> <board define>"
    exit 1
}
lassign $argv kernels board part mhz define
set kernels [file normalize $kernels]
if {![file exists $kernels/src/m3vit_backbone.cpp]} {
    puts stderr "csynth.tcl: $kernels/src/m3vit_backbone.cpp not found (first argument must be the kernels/ directory)"
    exit 1
}
if {![regexp {^EDGEMOE_BOARD_[A-Z0-9_]+$} $define]} {
    puts stderr "csynth.tcl: board define '$define' is not of the form EDGEMOE_BOARD_<BOARD>"
    exit 1
}

open_project -reset m3vit_$board
set_top m3vit_backbone
# Same flags as the v++ compile in the Makefile: C++14, both include roots, the board define.
add_files $kernels/src/m3vit_backbone.cpp -cflags "-std=c++14 -I$kernels/src -I$kernels -D$define"
open_solution -reset -flow_target vitis solution
set_part $part
create_clock -period [expr {1000.0 / $mhz}] -name default
# The Vitis flow's defaults, stated so that the report matches what v++ -c would build.
config_interface -m_axi_alignment_byte_size 64 -m_axi_max_widen_bitwidth 512
csynth_design
exit
