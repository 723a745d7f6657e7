// RUN: ircomp opt %s -p cse,dce | filecheck %s

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %a = nn.relu %x
// CHECK-NEXT:    %s = nn.add %a, %a
// CHECK-NEXT:    func.return %s
func.func @main(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %a = nn.relu %x : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %b = nn.relu %x : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %dead = nn.sigmoid %x : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %s = nn.add %a, %b : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  func.return %s : tensor<4x8xf32>
}
