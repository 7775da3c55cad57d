^XA
^CI28
^FO30,30^A0N,32,32^FDMAC {mac}^FS
^FO30,72^A0N,24,24^FDslot {slot}  code {barcode}  lot {batch}^FS
^FO30,106^A0N,24,24^FDserial {serial}  {date}^FS
^FO420,20^BQN,2,4^FDQA,{id}^FS
^XZ
