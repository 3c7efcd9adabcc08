# Vitis HLS C synthesis of m3vit_backbone for one board configuration.
# vitis_hls -f csynth.tcl -tclargs <kernels dir> <board> <part> <MHz>
set kernels [lindex $argv 0]
set board   [lindex $argv 1]
set part    [lindex $argv 2]
set mhz     [lindex $argv 3]
open_project -reset m3vit_$board
set_top m3vit_backbone
add_files $kernels/src/m3vit_backbone.cpp -cflags "-I$kernels -I$kernels/src -DEDGEMOE_KERNEL_CONFIG=\"config/$board.h\" -std=c++14"
open_solution -reset solution -flow_target vitis
set_part $part
create_clock -period [expr {1000.0 / $mhz}] -name default
config_interface -m_axi_alignment_byte_size 64 -m_axi_max_widen_bitwidth 512
csynth_design
exit
