/* placeholder so the simulator library is never empty; removed when the sim lands */
int espl_sim_placeholder;
